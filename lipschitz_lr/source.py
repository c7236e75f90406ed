"""Where an :class:`~lipschitz_lr.AdaptiveLR`'s statistics come from: the head it finds, the reference pass
over the loader (epoch 0 always, every epoch in reference mode) or the head hook of the training passes
(hook mode), the MAX all-reduce across ranks, and the checks on what reached the head."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn
from torch.optim import Optimizer

from ._wiring import guard_module_hooks, hook_paused, shuffles, user_stacklevel
from .batches import BatchUnpacker, default_unpack_batch, statistics_loader
from .batches import call_model as default_call_model
from .distributed import all_reduce_max
from .head_hook import HeadHook
from .models import find_head, head_from_forward, is_compiled, max_weight_norm, model_device, unwrap_model
from .options import Options
from .safeguards import pass_loss
from .statistics import LipschitzStatistics, collect_statistics

logger = logging.getLogger("lipschitz_lr.adaptive_lr")


class StatisticsSource:
    """The statistics of one :class:`~lipschitz_lr.AdaptiveLR` (see its ``model``, ``loader``, ``head``,
    ``distributed``, ``device``, ``unpack_batch`` and ``call_model`` arguments)."""

    def __init__(
        self,
        model: nn.Module,
        loader: Any,
        optimizer: Optimizer,
        options: Options,
        *,
        head: nn.Module | str | None,
        distributed: bool | None,
        device: Any,
        unpack_batch: BatchUnpacker | None,
        call_model: Callable[[nn.Module, Any], Any] | None,
    ) -> None:
        self.model, self.loader, self.device, self.distributed = model, loader, device, distributed
        self.unpack_batch = unpack_batch or default_unpack_batch
        self.call_model = call_model or default_call_model
        self.head, self.head_name = self._find_head(unwrap_model(model), head, loader)
        self.batch_size_inferred = options.batch_size is None  # read off the loader: examples, not tokens
        self._warned_batch_rows = False
        self.hook_removed = False
        self.hook: HeadHook | None = (
            HeadHook(self.head, optimizer, options.head_rows) if options.statistics == "hook" else None
        )
        if self.hook is not None and is_compiled(model):
            guard_module_hooks()

    def check_head_outputs(self, options: Options) -> None:
        """Cross-entropy's ``k`` must be the head's number of outputs."""
        outputs = getattr(self.head, "out_features", None)
        if options.loss == "cross_entropy" and isinstance(outputs, int) and outputs != options.num_classes:
            raise ValueError(
                f"num_classes={options.num_classes} but the head {self.head_name!r} ({self.head}) has {outputs} "
                "outputs; num_classes is k in the bound (k-1)/(k m) and must equal the number of logits. If that "
                "layer is not the output layer, name the right one: head='<dotted name>'"
            )

    def remove_hook(self) -> None:
        """Detach the head hook (hook mode): later epochs then have no statistics."""
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
            self.hook_removed = True

    def _find_head(self, model: nn.Module, head: nn.Module | str | None, loader: Any) -> tuple[nn.Module, str]:
        """The head: as named, else the ``nn.Linear`` that produces the output in a forward pass of the loader's
        first batch, else (no loader) the last ``nn.Linear`` registered. Logged with its name."""
        found = None
        if head is None and loader is not None and any(isinstance(m, nn.Linear) for m in model.modules()):
            first = next(iter(loader), None)
            if first is not None:
                found = head_from_forward(
                    model, first, unpack_batch=self.unpack_batch, call=self.call_model, device=self.device
                )
        module = found or find_head(model, head)
        name = next((n for n, m in model.named_modules() if m is module), type(module).__name__) or "(the model)"
        how = "named" if head is not None else "the output layer of a forward pass" if found else "the last nn.Linear"
        logger.info("AdaptiveLR head: %s = %s (%s)", name, module, how)
        return module, name

    def per_token(self, stats: LipschitzStatistics, m: int | None) -> bool:
        """A head applied per token: ``m`` was read off the loader (examples per batch), and the largest batch
        reached the head as a whole multiple of it (examples x tokens rows)."""
        rows = stats.batch_rows
        return self.batch_size_inferred and m is not None and rows > m and rows % m == 0

    def rows_per_batch(self, stats: LipschitzStatistics, m: int | None) -> float:
        """``m`` of the bound: the batch size ``m`` (None: the largest batch's rows), or every (example, token) row
        of a per-token head's batch."""
        return stats.batch_rows if m is None or self.per_token(stats, m) else m

    def _check_batch_rows(self, stats: LipschitzStatistics, epoch: int, m: int | None) -> None:
        """Warn (once) when the largest batch the statistics saw is not ``m`` rows."""
        if m is None or stats.batch_rows == m or self._warned_batch_rows:
            return
        if self.per_token(stats, m):
            return
        self._warned_batch_rows = True
        warnings.warn(
            f"AdaptiveLR epoch {epoch}: the largest batch that reached the head had {stats.batch_rows} rows, but "
            f"batch_size (m) is {m}. K_z is the norm of a whole batch and the bound divides by m, so "
            "the learning rate is wrong unless the statistics batches have the training batch size; give a loader "
            "with batch_size=m (or pass the batch_size the training loop uses)",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )

    @staticmethod
    def _loss(options: Options) -> Callable[[Any, Any], Any] | None:
        """The training loss the pass measures for ``backoff`` (none when it is off: the paper's pass unchanged)."""
        if options.backoff is None:
            return None
        return lambda output, targets: pass_loss(options.loss, output, targets, tau=options.tau)

    def is_distributed(self) -> bool:
        if self.distributed is not None:
            return self.distributed
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def collect(self, epoch: int, options: Options, m: int | None) -> LipschitzStatistics | None:
        """Epoch ``epoch``'s statistics (all-reduced over ranks when distributed); None with no loader at epoch 0.
        ``m``: the resolved batch size, against which the largest batch is checked."""
        distributed = self.is_distributed()
        if self.hook_removed and epoch > 0:
            raise RuntimeError(
                "statistics='hook', but remove_hooks() detached the forward hook: this scheduler has no statistics "
                "for this epoch (it would not silently switch to full reference passes); build a new AdaptiveLR"
            )
        if self.hook is not None and epoch > 0:
            stats = self.hook.accumulator.result(max_weight_norm(unwrap_model(self.model)))
            self.hook.accumulator.reset()
        elif self.loader is not None:
            with hook_paused(self.hook):
                stats = collect_statistics(
                    self.model,
                    self.loader,
                    head=self.head,
                    device=self.device,
                    unpack_batch=self.unpack_batch,
                    call=self.call_model,
                    allow_empty=distributed,
                    max_batches=options.statistics_batches,
                    batchnorm=options.batchnorm,
                    loss=self._loss(options),
                    rows_entering_the_loss=options.head_rows,
                )
        else:
            return None
        if distributed:
            stats = all_reduce_max(stats, self.device or model_device(unwrap_model(self.model)))
        if stats.batch_rows == 0:
            compiled = ""
            if self.hook is not None and is_compiled(self.model):
                compiled = (
                    ". The model is torch.compile'd, and a graph dynamo compiled before the head hook was "
                    "registered does not run it (pytorch/pytorch#117758): create AdaptiveLR before the first "
                    "compiled call, call torch._dynamo.reset() once it is created, or use statistics='reference'"
                )
            frozen = (
                ". The head is in eval mode, and the hook records only training-mode passes (a frozen head, as in "
                "a linear probe, never trains): use statistics='reference', or model.train() before the epoch"
                if self.hook is not None and not self.head.training
                else ""
            )
            raise ValueError(
                f"no batch reached the head ({type(self.head).__name__}) during epoch {epoch}: "
                "with statistics='hook', step() must follow an epoch of training forward passes; "
                f"otherwise the loader is empty{frozen}{compiled}"
            )
        self._check_batch_rows(stats, epoch, m)
        return stats


def checked_loader(loader: Any, dataset: Any, options: Options, model: nn.Module, device: Any) -> Any:
    """The statistics loader (built from ``dataset`` if given). Refused: a loader and a dataset, no loader where one
    is needed, an iterator (used up after one pass); a shuffling loader in reference mode is warned about."""
    if dataset is not None:
        if loader is not None:
            raise ValueError("give the statistics a loader or a dataset, not both")
        if options.batch_size is None:
            raise ValueError("dataset= requires batch_size (m, the training batch size), got batch_size=None")
        device_for_loader = device if device is not None else model_device(unwrap_model(model))
        loader = statistics_loader(dataset, options.batch_size, device_for_loader)
    if isinstance(loader, Iterator):
        raise ValueError(
            f"the statistics loader is an iterator ({type(loader).__name__}): it is used up after one pass, so "
            "every later epoch would see no batch; give a re-iterable loader (a DataLoader, a list of batches)"
        )
    if options.statistics == "reference" and loader is None:
        raise ValueError("statistics='reference' requires a loader of the training set, got loader=None")
    if options.statistics == "hook" and loader is None and options.initial_lr is None:
        raise ValueError(
            "statistics='hook' without a loader has no statistics before training: give a "
            "loader for epoch 0 or an initial_lr"
        )
    if options.statistics == "reference" and shuffles(loader):
        warnings.warn(
            f"the statistics loader ({type(loader).__name__}) shuffles: K_z is a maximum over its batches, so "
            "it changes from epoch to epoch with the order; give AdaptiveLR an in-order loader of the clean "
            "training set (shuffle=False, no augmentation) at the training batch size",
            stacklevel=user_stacklevel(),
        )
    return loader
