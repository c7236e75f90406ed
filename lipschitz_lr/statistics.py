"""Collecting the activation statistics that the Lipschitz bounds need.

Two sources, one accumulator:

* :func:`collect_statistics` is the **reference pass**: one extra pass over a loader in
  inference mode, exactly as the authors' code did it (eval mode, no grad, BatchNorm running
  statistics untouched, every module's previous mode restored, partial last batch kept).
* :class:`~lipschitz_lr.head_hook.HeadHook` is the **fast mode**: a forward hook on the head that records the same
  statistics from the training forward passes, so no extra pass is needed. It sees train-mode
  BatchNorm/Dropout, augmented data and weights that move during the epoch, so it is not
  reference-equivalent; for a model without BatchNorm/Dropout whose weights do not change, the two
  agree (tested).

Norms are accumulated in float64 on the activations' device, whatever the training precision,
and maxima stay on the device until the end of the pass (one host synchronisation per pass).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .batches import BatchUnpacker, call_model, default_unpack_batch, first_tensor, to_device
from .models import eval_mode, find_head, max_weight_norm, model_device, model_dtype, unwrap_model

__all__ = [
    "BATCHNORM_MODES",
    "HEAD_ROWS",
    "LipschitzStatistics",
    "StatisticsAccumulator",
    "collect_statistics",
    "head_rows",
]


@dataclass(frozen=True)
class LipschitzStatistics:
    """Statistics of one epoch, each a maximum over batches.

    Attributes:
        k_z: largest Frobenius norm of a batch of head inputs (batch x features).
        s: largest Frobenius norm of the elementwise square of a batch of head inputs.
        output_norm: largest Frobenius norm of a batch of head outputs (``K_a`` for MSE).
        target_norm: largest Frobenius norm of a batch of targets (0 when none were seen).
        max_weight_norm: largest Frobenius norm of a single floating tensor of the model's state.
        batch_rows: largest number of rows in a batch of head inputs.
        num_batches: how many batches this process saw (:func:`all_reduce_max` leaves it per rank).
        loss: the mean over the pass's batches of the training loss (:func:`~lipschitz_lr.safeguards.pass_loss`),
            ``inf`` where it was not finite; NaN where it was not measured (hook mode, or outputs and targets
            that do not fit the loss).
    """

    k_z: float
    s: float
    output_norm: float
    target_norm: float
    max_weight_norm: float
    batch_rows: int
    num_batches: int
    loss: float = math.nan

    @classmethod
    def from_maxima(
        cls, maxima: Iterable[float], max_weight_norm: float, num_batches: int, loss: float = math.nan
    ) -> LipschitzStatistics:
        """From the per-batch maxima ``(k_z, s, output_norm, target_norm, rows)``."""
        k_z, s, out, y, rows = (float(v) for v in maxima)
        return cls(
            k_z=k_z,
            s=s,
            output_norm=out,
            target_norm=y,
            max_weight_norm=float(max_weight_norm),
            batch_rows=int(rows) if math.isfinite(rows) else 0,
            num_batches=num_batches,
            loss=float(loss),
        )


class StatisticsAccumulator:
    """Running maxima of the per-batch norms and the batch count, one float64 tensor on the data's device.

    The tensor is allocated at the first batch and then updated and reset in place, so a forward
    hook that feeds it can be traced by ``torch.compile`` without a recompilation per batch (no
    Python state changes from one batch to the next). Reading :attr:`num_batches` synchronises.
    """

    def __init__(self) -> None:
        self._values: Tensor | None = None  # [k_z, s, output_norm, target_norm, rows, batches]

    def reset(self) -> None:
        if self._values is not None:
            self._values.zero_()

    @property
    def num_batches(self) -> int:
        return 0 if self._values is None else int(self._values[5])

    def update(self, head_input: Tensor, head_output: Tensor | None = None, targets: Any = None) -> None:
        """Fold one batch in: ``head_input`` is (batch x ...) and flattened per row."""
        a = head_input.detach().to(torch.float64)
        k_z = torch.linalg.vector_norm(a)
        s = torch.linalg.vector_norm(a.square())
        zero = torch.zeros((), dtype=torch.float64, device=a.device)
        out = (
            torch.linalg.vector_norm(head_output.detach(), dtype=torch.float64)
            if isinstance(head_output, Tensor)
            else zero
        )
        target_tensor = first_tensor(targets)
        if target_tensor is not None:  # integer targets too: counts regressed with MSE (class labels: unused)
            y = torch.linalg.vector_norm(target_tensor.detach().to(a.device, torch.float64, non_blocking=True))
        else:
            y = zero
        # m's rows: every leading position, so a head applied per token (batch x tokens x features) counts
        # batch * tokens, whichever of the two comes first
        rows = a.new_full((), float(math.prod(a.shape[:-1])) if a.dim() > 1 else float(a.shape[0]) if a.dim() else 1.0)
        self._fold(torch.stack([k_z, s, out, y, rows, torch.ones_like(zero)]))

    def merge(self, other: StatisticsAccumulator) -> None:
        """Fold in everything ``other`` has seen (its maxima and its batch count)."""
        if other._values is not None:
            self._fold(other._values)

    def _fold(self, values: Tensor) -> None:
        if self._values is None or self._values.device != values.device:
            previous = self._values
            self._values = torch.zeros(6, dtype=torch.float64, device=values.device)
            if previous is not None:
                self._values.copy_(previous)
        # NaN must win the maximum (torch.maximum propagates NaN), so a NaN batch is not hidden.
        self._values.copy_(torch.cat([torch.maximum(self._values[:5], values[:5]), self._values[5:] + values[5:]]))

    def state_dict(self) -> dict[str, Any]:
        """The running maxima as plain values (a checkpoint written mid-epoch in hook mode keeps them)."""
        maxima = None if self._values is None else [float(v) for v in self._values[:5].cpu()]
        return {"maxima": maxima, "num_batches": self.num_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        maxima = state.get("maxima")
        if maxima is not None and (not isinstance(maxima, (list, tuple)) or len(maxima) != 5):
            raise ValueError(f"hook statistics need 5 maxima (k_z, s, output, target, rows), got {maxima!r}")
        if maxima is None:
            self._values = None
            return
        values = [*(float(v) for v in maxima), float(state.get("num_batches", 0))]
        device = self._values.device if self._values is not None else None
        self._values = torch.tensor(values, dtype=torch.float64, device=device)

    def maxima(self) -> Tensor:
        """The five maxima as a float64 CPU tensor (zeros when nothing was seen)."""
        if self._values is None:
            return torch.zeros(5, dtype=torch.float64)
        return self._values[:5].cpu()

    def result(self, weight_norm: float) -> LipschitzStatistics:
        values = self._values.cpu() if self._values is not None else torch.zeros(6, dtype=torch.float64)
        return LipschitzStatistics.from_maxima(values[:5], weight_norm, int(values[5]))


#: Which rows of a head applied per token (or per pixel) enter the loss (``AdaptiveLR(head_rows=)``): every one
#: (a tagger, a segmentation head), or only each example's first or last (a classifier run on every token whose
#: loss pools one, such as Hugging Face's GPT-2 classifier on unpadded batches).
HEAD_ROWS: tuple[str, ...] = ("all", "first", "last")


def head_rows(module: nn.Module, head_input: Tensor, rows: str = "all") -> Tensor:
    """The head's inputs as (rows..., features): a linear head's as they are; a 1x1 convolution's feature map
    (batch, channels, *pixels) with each pixel a row (batch, *pixels, channels), as a linear layer applied per
    pixel; with ``rows="first"``/``"last"`` only each example's first or last token (or pixel) row.

    Any other convolution is refused: its inputs are patches, not rows, and ``K_z`` over a whole map is not the
    bound's.

    >>> head_rows(nn.Conv2d(8, 3, 1), torch.zeros(2, 8, 5, 5)).shape
    torch.Size([2, 5, 5, 8])
    >>> head_rows(nn.Linear(8, 3), torch.zeros(2, 7, 8), "last").shape
    torch.Size([2, 8])
    """
    if isinstance(module, nn.modules.conv._ConvNd) and head_input.dim() > 2:
        pointwise = all(k == 1 for k in module.kernel_size) and all(s == 1 for s in module.stride)
        if not pointwise or module.groups != 1:
            raise ValueError(
                f"the head ({type(module).__name__}, kernel {tuple(module.kernel_size)}) is a convolution, whose "
                f"inputs are patches of feature maps {tuple(head_input.shape)}: the bound is for a linear layer on "
                "(batch, features), which a 1x1 convolution (each pixel a row) is and this one is not. Name the layer "
                "after the pooling as head, or an nn.Identity() placed on the pooled features"
            )
        head_input = head_input.movedim(1, -1)
    if rows != "all" and head_input.dim() > 2:
        head_input = head_input.flatten(1, -2)[:, 0 if rows == "first" else -1]
    return head_input


#: How BatchNorm layers normalise during the reference pass (``collect_statistics(batchnorm=)``).
BATCHNORM_MODES: tuple[str, ...] = ("batch", "running")


def _normalise_by_batch(module: nn.Module, inputs: tuple[Any, ...]) -> None:
    """Forward pre-hook: train-mode BatchNorm (the batch's own statistics) unless the batch has a single value
    per channel, which train mode cannot normalise (such a batch uses the running statistics)."""
    x = inputs[0]
    module.training = isinstance(x, Tensor) and x.dim() >= 2 and x.shape[0] * math.prod(x.shape[2:]) > 1


@contextlib.contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """Inside, every BatchNorm layer of ``model`` normalises each batch by its own statistics (as in training)
    while its running statistics are left as they were (saved and restored)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{name: buffer.clone() for name, buffer in m.named_buffers(recurse=False)} for m in layers]
    handles = [m.register_forward_pre_hook(_normalise_by_batch) for m in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for layer, buffers in zip(layers, saved, strict=True):
                for name, value in buffers.items():
                    getattr(layer, name).copy_(value)


@torch.no_grad()
def collect_statistics(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    head: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    unpack_batch: BatchUnpacker = default_unpack_batch,
    call: Callable[[nn.Module, Any], Any] = call_model,
    allow_empty: bool = False,
    max_batches: int | None = None,
    batchnorm: str = "running",
    loss: Callable[[Any, Any], Tensor | None] | None = None,
    rows_entering_the_loss: str = "all",
) -> LipschitzStatistics:
    """The reference pass: statistics of the head's inputs over every batch of ``loader``.

    The model is put in eval mode (Dropout is off), gradients are off, and every module's previous
    ``training`` flag is restored afterwards, also on error. BatchNorm layers use their running
    statistics (``batchnorm="running"``, the paper's eval pass) or each batch's own statistics, as
    in training, with their running statistics left untouched (``"batch"``; AdaptiveLR's default:
    at initialisation the running statistics are 0 and 1, and in many modern networks the eval
    pass then makes the head's inputs nearly vanish, K_z ~ 1e-8, and the rate absurd). Batches are
    taken as the loader yields them (give it the clean training set, in order, at the training batch
    size, partial last batch kept).

    Args:
        model: the network (a ``DistributedDataParallel`` wrapper is unwrapped, so that ranks with
            different numbers of batches do not deadlock on its buffer broadcast).
        loader: any iterable of batches.
        head: see :func:`find_head`.
        device: where to move inputs; default the device of the model's first parameter or buffer.
        unpack_batch: splits a batch into (inputs, targets) (:func:`default_unpack_batch`).
        call: calls the model on the inputs (:func:`call_model`: a dict as keyword arguments).
        allow_empty: return zeros for an empty loader instead of raising (a distributed rank
            with an empty shard must still reach the all-reduce).
        max_batches: read only the loader's first ``max_batches`` batches (a fixed subset: the
            cheaper pass for large datasets; not the paper's, whose ``K_z`` is over every batch).
        batchnorm: ``"running"`` (default here, the paper's) or ``"batch"`` (see above). A
            ``SyncBatchNorm`` in ``"batch"`` mode synchronises every batch across ranks, so every
            rank must then see the same number of batches.
        loss: ``loss(output, targets)``, a batch's mean training loss (None where it cannot say); its mean
            over the batches is the statistics' ``loss`` (:mod:`lipschitz_lr.safeguards` watches it).
        rows_entering_the_loss: which of a per-token head's rows count (:func:`head_rows`).

    Raises:
        ValueError: the loader is empty, or the head never ran during the pass.
    """
    model = unwrap_model(model)
    head_module = find_head(model, head)
    if device is None:
        device = model_device(model)
    device = torch.device(device) if device is not None else None
    dtype = model_dtype(model)
    accumulator = StatisticsAccumulator()
    current: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        head_input = first_tensor(inputs)
        if head_input is not None:
            current["called"] = True
            rows = head_rows(module, head_input, rows_entering_the_loss)
            accumulator.update(rows, output if isinstance(output, Tensor) else None, current.get("targets"))

    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"unknown batchnorm {batchnorm!r}; expected one of {', '.join(BATCHNORM_MODES)}")
    handle = head_module.register_forward_hook(hook)
    seen_batches = 0
    loss_sum: Tensor | None = None  # on the device, read once at the end
    loss_measured = loss is not None
    normalisation = _batch_statistics(model) if batchnorm == "batch" else contextlib.nullcontext()
    try:
        with eval_mode(model), normalisation:
            for batch in loader if max_batches is None else itertools.islice(loader, max_batches):
                inputs, targets = unpack_batch(batch)
                inputs = to_device(inputs, device, dtype)
                current.update(targets=targets, called=False)
                output = call(model, inputs)
                seen_batches += 1
                if loss_measured:
                    batch_loss = loss(output, targets)
                    loss_measured = batch_loss is not None
                    if batch_loss is not None:
                        loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
                if not current["called"]:
                    raise ValueError(
                        f"the head ({type(head_module).__name__}) was never called during the forward "
                        "pass; name the module whose inputs are the penultimate activations with head="
                    )
    finally:
        handle.remove()
    if seen_batches == 0 and not allow_empty:
        raise ValueError("the loader yielded no batches; AdaptiveLR needs at least one batch")
    stats = accumulator.result(max_weight_norm(model))
    if loss_measured and loss_sum is not None:
        mean = float(loss_sum) / seen_batches
        stats = dataclasses.replace(stats, loss=mean if math.isfinite(mean) else math.inf)
    return stats
