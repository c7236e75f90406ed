"""``AdaptiveLR``: the LipschitzLR scheduler, a ``torch.optim.lr_scheduler.LRScheduler``.

Its options are one object, :class:`~lipschitz_lr.options.Options`; one update's rate is
:mod:`lipschitz_lr.rate` (bounds, then the variant's rule) and :mod:`lipschitz_lr.safeguards`; what it
remembers per epoch is :class:`~lipschitz_lr.records.EpochRecord`; how it meets the optimizer and the loader
is :mod:`lipschitz_lr._wiring`; the per-step factors (the Keras decay, the warm-up) are :mod:`lipschitz_lr.per_step`.

The hooks it installs, and why (:meth:`AdaptiveLR.remove_hooks` removes the lasting ones):

* an optimizer step pre-hook on its optimizer, always: counts the steps, takes in param groups added since, refuses
  a rate someone else wrote and, during a warm-up or with the Keras decay, writes the step's rate before the step;
* hook mode (``statistics="hook"``) only: a forward hook on the head (:class:`~lipschitz_lr.head_hook.HeadHook`)
  recording its inputs' statistics, an optimizer step post-hook on its optimizer that counts them once the step is
  taken, and one process-wide post-hook (``register_optimizer_step_post_hook``) that drops passes another
  optimizer stepped after (a learning-rate finder's);
* during a reference pass only, removed when it ends: a forward hook on the head (the statistics) and, with
  ``batchnorm="batch"``, forward pre-hooks on the BatchNorm layers (:mod:`lipschitz_lr.statistics`); when the
  head is looked for, forward hooks on its ``nn.Linear`` layers for one pass
  (:func:`~lipschitz_lr.models.head_from_forward`).

A training loop that steps a per-step schedule calls it after ``optimizer.step()`` returns, so every hook above has
run by then; nothing depends on the order hooks were registered in.

References:
    Yedida, Saha, Prashanth. "LipschitzLR: Using theoretically computed adaptive learning rates
    for fast convergence." Applied Intelligence (2021), arXiv:1902.07399.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from . import _wiring as wiring
from .batches import BatchUnpacker, loader_length
from .models import batchnorm_layers
from .options import MOMENTUM_SEEDS, STATISTICS_SOURCES, Options, expose_options, known
from .per_step import InverseTimeDecay, linear_warmup
from .rate import Emas, bounds, rule_rate
from .records import RUNNING_STATE, EpochRecord, Resolved, checked_state, restored_options
from .safeguards import divergence, safeguarded, unusual_rate
from .source import StatisticsSource, checked_loader

logger = logging.getLogger(__name__)

__all__ = ["MOMENTUM_SEEDS", "SANE_LR_RANGE", "STATISTICS_SOURCES", "AdaptiveLR", "EpochRecord", "Options"]

#: A written learning rate outside this range is written with a warning (it comes from degenerate
#: statistics far more often than from a network that wants it).
SANE_LR_RANGE = (1e-6, 1e3)


class AdaptiveLR(LRScheduler):
    r"""Sets the learning rate to ``1/K`` every epoch, ``K`` a Lipschitz bound of the loss.

    At construction (epoch 0, from the initial weights) and at every :meth:`step` (once per
    epoch), the statistics of the inputs of the network's last linear layer are collected and
    turned into a learning rate. For softmax cross-entropy (``c = (k-1)/(k m)``):

    .. math::
        K_\ast &= c\,K_z + \lambda\,\max_i \|W_i\|_F \\
        \text{sgd:}\quad \eta &= 1/K_\ast \\
        \text{momentum:}\quad K_1 &\leftarrow \beta_1 K_1 + (1-\beta_1) K_\ast,\quad \eta = 1/K_1 \\
        S_\ast &= c^2 S + 2\lambda \max_i\|W_i\|_F\,c\,K_z \\
        \text{rmsprop:}\quad K_2 &\leftarrow \rho K_2 + (1-\rho) S_\ast,\quad
            \eta = (\sqrt{K_2} + \epsilon)/K_z \\
        \text{adam:}\quad \eta &= (\sqrt{K_2} + \epsilon)/K_1
            \quad (K_1, K_2 \text{ EMAs with } \beta_1, \beta_2)

    ``K_z`` is the largest Frobenius norm of a whole batch (batch x features) of head inputs
    and ``S`` that of its elementwise square, over the batches of ``loader`` taken in order in
    eval mode (``statistics="reference"``), or over the training forward passes of the epoch
    (``statistics="hook"``, no extra pass, not reference-equivalent). The EMAs start from 0 with
    no bias correction unless asked, as in the authors' code.

    The value is written into every ``param_group["lr"]``; each group keeps its ratio to the
    largest initial learning rate. A non-finite or non-positive learning rate is never written:
    the previous one is kept and a warning is issued. A finite rate outside
    :data:`SANE_LR_RANGE` is written with a warning that names the statistics behind it.

    Args:
        optimizer: the wrapped optimizer. For ``variant="momentum"`` with ``torch.optim.SGD``,
            the paper's EMA-form momentum ``v = b v + (1-b) g`` is mapped onto torch's
            ``buf = b buf + (1-d) g`` by multiplying the learning rate by ``(1-b)/(1-d)`` (1 for
            ``SGD(momentum=b, dampening=b)``, ``1-b`` for plain heavy-ball).
        model: the network (a ``DistributedDataParallel`` or ``torch.compile`` wrapper is fine: the
            reference pass runs the plain module inside it). With ``statistics="hook"`` give the
            compiled module, not the plain one: AdaptiveLR then sets dynamo's process-wide
            ``skip_nnmodule_hook_guards`` to False, without which dynamo may share one compiled graph
            between this model and another instance of its class and skip or misfeed the hook.
        loader: batches of the clean training set, in order, at the training batch size. Required
            for ``statistics="reference"`` (or ``dataset``); with ``"hook"`` it is used only for epoch 0.
        dataset: instead of ``loader``, a map-style ``Dataset`` of the clean training set (no
            augmentation); the in-order loader is built from it at ``batch_size``
            (:func:`~lipschitz_lr.batches.statistics_loader`). Needs ``batch_size``.
        head: the module whose inputs are the penultimate activations, or its dotted name. Default: the
            ``nn.Linear`` that produces the model's output in a forward pass of the loader's first batch
            (without a loader, the last ``nn.Linear`` registered); logged with its name. For a head
            applied per token (inputs batch x tokens x features), ``m`` counts every (batch, token)
            row, as a loss averaged over tokens does (an explicit ``batch_size`` is taken as given).
            A convolution is refused as head; for a functional head (``F.linear``, a cosine
            classifier) name an ``nn.Identity()`` placed before it.
        distributed: all-reduce (MAX) the statistics over the default process group; default when
            one is initialised with more than one rank. Every rank must call :meth:`step`.
        device: where to run the reference pass; default the model's device.
        unpack_batch: splits a batch into ``(inputs, targets)``; default handles tensors, tuples
            and dicts: targets under ``target``, ``targets``, ``label``, ``labels`` or ``y``, inputs under
            ``input``, ``inputs`` or ``x``, else the dict's other keys as keyword inputs (a Hugging Face
            batch works as it is). Floating inputs are cast to the model's dtype.
        call_model: how the pass calls the model on the inputs; default ``model(**inputs)`` for a dict,
            else ``model(inputs)``. For several positional inputs: ``lambda model, xs: model(*xs)``.
        last_epoch: as in every torch scheduler.
        options: an :class:`~lipschitz_lr.options.Options`; the keyword options below override its values.

    Options (keyword arguments; each is also a read-only attribute):
{options}

    Beyond the paper, not an option: at the paper's SGD rates, evaluating an exponential moving average of the
    weights (torch's ``AveragedModel``) with a one-epoch warm-up was our fastest setting without tuning; the recipe
    is in docs/usage.md, "Averaging the weights (ours, beyond the paper)".

    Attributes:
        history: list of :class:`EpochRecord`, one per epoch.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(4)]
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> sched = AdaptiveLR(opt, model, data, loss="cross_entropy", num_classes=3, batch_size=16)
        >>> for epoch in range(2):
        ...     for x, y in data:
        ...         opt.zero_grad()
        ...         nn.functional.cross_entropy(model(x), y).backward()
        ...         opt.step()
        ...     sched.step()
        >>> len(sched.history)
        3
    """

    def __init__(
        self,
        optimizer: Optimizer,
        model: nn.Module,
        loader: Iterable[Any] | None = None,
        *,
        dataset: torch.utils.data.Dataset[Any] | None = None,
        head: nn.Module | str | None = None,
        distributed: bool | None = None,
        device: torch.device | str | None = None,
        unpack_batch: BatchUnpacker | None = None,
        call_model: Callable[[nn.Module, Any], Any] | None = None,
        last_epoch: int = -1,
        options: Options | None = None,
        **option_values: Any,
    ) -> None:
        opts = options.replace(**option_values) if options is not None else Options(**known(option_values))
        loader = checked_loader(loader, dataset, opts, model, device)
        n_groups = len(optimizer.param_groups)
        if n_groups == 0:
            raise ValueError(
                f"requires an optimizer with at least one param group, got {type(optimizer).__name__} with none "
                "(were its param_groups cleared?)"
            )
        on_meta = [name for name, p in model.named_parameters() if p.is_meta]
        if on_meta:
            raise ValueError(
                f"the model's parameters are on the meta device (not materialised), e.g. {on_meta[0]!r}; move them "
                "to a real device and initialise them (model.to_empty(device=...) then init or load weights) before "
                "building AdaptiveLR"
            )
        self.options = opts  # as given; what they come to here is self.resolved
        self.resolved = wiring.resolve(opts, optimizer, loader)

        # State.
        self.history: list[EpochRecord] = []
        self._k1 = 0.0
        self._k2 = 0.0
        self._num_updates = 0
        self._iteration = 0
        self._epoch_lrs: list[float] = []
        self._pass_loss = math.nan  # the last finite training loss the reference pass measured

        # Runtime objects: never in state_dict.
        self._source = StatisticsSource(
            model,
            loader,
            optimizer,
            opts,
            head=head,
            distributed=distributed,
            device=device,
            unpack_batch=unpack_batch,
            call_model=call_model,
        )
        self._momentum_factors = (
            [wiring.momentum_factor(optimizer, g, i) for i, g in enumerate(optimizer.param_groups)]
            if self.variant == "momentum"
            else [1.0] * n_groups
        )
        self._source.check_head_outputs(self.options)
        wiring.check_optimizer_family(optimizer, self.variant)
        self._warned_per_batch = False
        self._steps_since_step = 0
        self._step_hook_handle = optimizer.register_step_pre_hook(self._before_optimizer_step)
        super().__init__(optimizer, last_epoch)

    # ------------------------------------------------------------------ helpers

    def _sync_groups(self) -> None:
        """Take in param groups added after construction (``optimizer.add_param_group``, gradual unfreezing):
        each keeps its ratio of its initial learning rate to the largest initial one, with no clamp."""
        groups = self.optimizer.param_groups
        added = groups[len(self.base_lrs) :]
        if not added or not hasattr(self, "_ratios"):
            return
        largest = max(float(lr) for lr in self.base_lrs)
        reference = self._epoch_lrs[self._ratios.index(1.0)] / self._momentum_factors[self._ratios.index(1.0)]
        for offset, group in enumerate(added, start=len(self.base_lrs)):
            initial = float(group.setdefault("initial_lr", float(group["lr"])))
            factor = wiring.momentum_factor(self.optimizer, group, offset) if self.variant == "momentum" else 1.0
            self.base_lrs.append(initial)
            self._ratios.append(initial / largest)
            self._momentum_factors.append(factor)
            resolved = self.resolved
            self.resolved = replace(resolved, min_lr=(*resolved.min_lr, 0.0), max_lr=(*resolved.max_lr, math.inf))
            self._epoch_lrs.append(reference * factor * initial / largest)
            self._last_lr.append(self._epoch_lrs[-1] * self._step_factor())
            wiring.set_lr(group, self._last_lr[-1])
        logger.info("AdaptiveLR: %d param group(s) added after construction take their ratio", len(added))

    def _step_factor(self) -> float:
        """The factor on the epoch's rates at optimizer step ``_iteration``: the Keras decay
        ``1 / (1 + lambda t)`` and the warm-up ``min(1, (t + 1) / warmup_steps)`` (:mod:`lipschitz_lr.per_step`)."""
        keras = InverseTimeDecay(self.weight_decay)(self._iteration) if self.keras_decay else 1.0
        return keras * linear_warmup(self._iteration, self.resolved.warmup_steps)

    def _check_rates_are_ours(self, when: str) -> None:
        """Refuse a learning rate that someone else wrote since this scheduler's last write."""
        for index, (group, ours) in enumerate(zip(self.optimizer.param_groups, self._last_lr, strict=True)):
            current = float(group["lr"])
            if not math.isclose(current, ours, rel_tol=1e-9, abs_tol=1e-15):
                raise ValueError(
                    f"AdaptiveLR wrote lr={ours!r} into param group {index}, but it holds {current!r} {when}: "
                    f"another scheduler or the training code changed it. {wiring.COMPOSED}"
                )

    def _before_optimizer_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        """Every optimizer step: count it, take in added param groups, refuse a rate someone else wrote and, with
        a Keras decay or during a warm-up only, write this step's rates (the epoch's times :meth:`_step_factor`)."""
        self._steps_since_step += 1
        if not self._epoch_lrs:
            return
        self._sync_groups()
        self._check_rates_are_ours("at this optimizer step")
        warmup_steps = self.resolved.warmup_steps
        if self.keras_decay or (warmup_steps and self._iteration <= warmup_steps):
            factor = self._step_factor()
            for group, lr in zip(optimizer.param_groups, self._epoch_lrs, strict=True):
                wiring.set_lr(group, lr * factor)
            self._last_lr = [float(lr * factor) for lr in self._epoch_lrs]
        self._iteration += 1

    def _initial_step(self) -> None:
        if getattr(self, "_initial_step_done", False):  # SequentialLR's second initial step
            raise ValueError(f"AdaptiveLR cannot be composed with other schedulers. {wiring.COMPOSED}")
        self._initial_step_done = True
        super()._initial_step()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is not None:  # SequentialLR switching to this scheduler at its milestone
            raise ValueError(f"AdaptiveLR cannot be composed with other schedulers. {wiring.COMPOSED}")
        super()._update_lr(epoch)

    # ------------------------------------------------------------------ scheduler API

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Compute this epoch's learning rate from the current model and write it.

        Call once per epoch, after the epoch's ``optimizer.step()`` calls (or, in hook mode, every N
        optimizer steps: each call then turns the forward passes since the previous one into a rate,
        and :attr:`history` counts periods). Passing ``epoch`` is not supported (the learning rate
        depends on the weights, not on the epoch number).
        """
        if epoch is not None:
            raise ValueError(
                f"AdaptiveLR.step() takes no epoch (the LR depends on the model), got {epoch=}. {wiring.COMPOSED}"
            )
        self._warn_per_batch_steps()
        self._steps_since_step = 0
        self._sync_groups()  # groups added since the last write (none before the first step)
        if self._epoch_lrs:
            self._check_rates_are_ours("at step()")
        self._advance(self.last_epoch + 1)
        super().step()

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates :meth:`step` writes now: the epoch's rates times the Keras decay factor.

        No side effects: the statistics pass, the EMAs and :attr:`history` advance in :meth:`step`
        only. As torch's schedulers do, a call from outside ``step()`` warns (use ``get_last_lr()``).
        """
        if not getattr(self, "_get_lr_called_within_step", True):
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        factor = self._step_factor()
        return [lr * factor for lr in self._epoch_lrs]

    def _warn_per_batch_steps(self) -> None:
        """Reference mode, ``step()`` after a single optimizer step (Lightning's ``interval="step"``) while the
        loader has many batches: every such call is a full pass over the loader. Said once."""
        batches = (loader_length(self._loader) or 0) if self._loader is not None else 0
        if self._hook is None and self._steps_since_step == 1 and batches >= 8 and not self._warned_per_batch:
            self._warned_per_batch = True
            warnings.warn(
                f"AdaptiveLR.step() after one optimizer step, but in reference mode every step() is a full pass "
                f"over the statistics loader ({batches} batches): call it once per epoch (Lightning: "
                "interval='epoch'), or use statistics='hook' to update every N optimizer steps",
                UserWarning,
                stacklevel=wiring.user_stacklevel(),
            )

    def _anchor(self) -> float:
        """The rate the first update grows from (``max_growth``): the optimizer's own largest initial rate, in the
        method's terms (before the momentum mapping)."""
        reference = self._ratios.index(1.0)
        return float(self.base_lrs[reference]) / self._momentum_factors[reference]

    def _advance(self, epoch: int) -> None:
        """Epoch ``epoch``'s statistics, bounds and learning rates (into ``_epoch_lrs`` and :attr:`history`):
        the rule's rate, then the safeguards (``backoff`` after a divergence, ``max_growth``), then the groups."""
        if not hasattr(self, "_ratios"):  # the first step, from LRScheduler.__init__
            self._ratios = wiring.group_ratios(self.base_lrs)
        stats = self._source.collect(epoch, self.options, self.resolved.batch_size)
        if stats is None:
            k_z = s_max = weight = k = s = curvature = math.nan
        else:
            k_z, s_max, weight = stats.k_z, stats.s, stats.max_weight_norm
            k, s, curvature = bounds(self.options, stats, self._source.rows_per_batch(stats, self.resolved.batch_size))
        bound = curvature if self.options.resolved_rule == "smooth" else k
        emas = Emas(self._k1, self._k2, self._num_updates)
        rule_lr, note, (self._k1, self._k2, self._num_updates) = rule_rate(self.options, emas, epoch, bound, s, k_z)
        last = self.history[-1].method_lr if self.history else None
        last = last if last is not None and math.isfinite(last) and last > 0 else None
        anchor = None if note == "initial_lr" else self._anchor()
        loss = stats.loss if stats is not None else math.nan
        cause = divergence(bound, loss, self._pass_loss, k_z) if epoch > 0 and stats is not None else ""
        method_lr, note, warning = safeguarded(rule_lr, note, last, anchor, cause, loss, self._pass_loss, self.options)
        if warning:
            warnings.warn(f"AdaptiveLR epoch {epoch}: {warning}", RuntimeWarning, stacklevel=wiring.user_stacklevel())
        if stats is not None and math.isfinite(stats.loss):
            self._pass_loss = stats.loss

        previous = self._epoch_lrs or [float(lr) for lr in self.base_lrs]
        if not (math.isfinite(method_lr) and method_lr > 0):
            message = (
                f"AdaptiveLR epoch {epoch}: computed learning rate {method_lr!r} (K_z={k_z!r}, "
                f"K={k!r}) is not finite and positive; keeping the previous learning rates {previous}"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=wiring.user_stacklevel())
            lrs, note = list(previous), "guarded"
        else:
            lrs = []
            for ratio, factor, low, high in zip(
                self._ratios, self._momentum_factors, self.resolved.min_lr, self.resolved.max_lr, strict=True
            ):
                raw = method_lr * factor * ratio
                clamped = min(max(raw, low), high) if ratio > 0 else 0.0
                if clamped != raw and note == "":
                    note = "clamped"
                lrs.append(clamped)
        self._epoch_lrs = lrs
        reference_group = self._ratios.index(1.0)
        record = EpochRecord(
            epoch=epoch,
            k_z=k_z,
            s=s_max,
            max_weight_norm=weight,
            k=k,
            method_lr=method_lr,
            lr=lrs[reference_group],
            note=note,
            curvature=None if math.isnan(curvature) else curvature,
            rule_lr=rule_lr,
            loss=None if stats is None or math.isnan(stats.loss) else stats.loss,
        )
        self.history.append(record)
        self._warn_about(record, last)
        logger.info(
            "AdaptiveLR epoch %d: K_z=%.6g max_weight_norm=%.6g K=%.6g L=%.6g loss=%s lr=%.6g %s",
            epoch,
            k_z,
            weight,
            k,
            curvature,
            record.loss,
            record.lr,
            note,
        )

    def _warn_about(self, record: EpochRecord, last: float | None) -> None:
        """A written rate outside :data:`SANE_LR_RANGE`, or 10x above or below the last update's, is warned about
        with the statistics behind it (:func:`~lipschitz_lr.safeguards.unusual_rate`)."""
        running = self.batchnorm == "running" and bool(batchnorm_layers(self._model))
        message = unusual_rate(record, last, SANE_LR_RANGE, type(self._head).__name__, running_batchnorm=running)
        if message:
            warnings.warn(message, RuntimeWarning, stacklevel=wiring.user_stacklevel())

    def state_dict(self) -> dict[str, Any]:
        """The options (:meth:`Options.to_dict`) and the running state as plain values: no model, loader, hooks
        or optimizer.

        In hook mode the statistics gathered so far in the current epoch are included, so a
        checkpoint written mid-epoch resumes with them.
        """
        state = {**self.options.to_dict(), **{key: getattr(self, key) for key in RUNNING_STATE}}
        state["resolved"] = self.resolved.to_dict()
        state["base_lrs"] = [float(lr) for lr in self.base_lrs]
        state["_last_lr"] = [float(lr) for lr in self._last_lr]
        state["history"] = [asdict(record) for record in self.history]
        state["hook_statistics"] = self._hook.state_dict() if self._hook is not None else None
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, check it, and write the restored learning rate into the optimizer.

        The variant, ``num_classes`` (a property of the model's head) and the statistics source must match
        this instance's. Other options in the state (``weight_decay``, ``batch_size``, ...) replace this
        instance's, as torch schedulers do, with a warning naming each value that changes; every value is
        checked as the constructor checks it. The restored learning rate is written into the optimizer's
        param groups, so the common resume order (load the optimizer, build the scheduler, load the
        scheduler) trains the next epoch at the saved rate rather than at the one computed at construction.
        A state saved before an option existed takes that option's earlier behaviour.
        """
        n_groups = len(self.optimizer.param_groups)
        state_dict, saved = restored_options(state_dict, self.options, n_groups)
        changed = [
            f"{k} {v!r} -> {getattr(saved, k)!r}" for k, v in self.options.__dict__.items() if getattr(saved, k) != v
        ]
        if changed:
            warnings.warn(
                "AdaptiveLR.load_state_dict replaces this scheduler's configuration with the saved one: "
                + "; ".join(changed),
                stacklevel=wiring.user_stacklevel(),
            )
        state = checked_state(state_dict, n_groups)
        self.options, self.resolved = saved, Resolved.from_state(state_dict, n_groups)
        for key, value in state.items():
            setattr(self, key, value)
        self._ratios = wiring.group_ratios(self.base_lrs)
        if state_dict["hook_statistics"] is not None and self._hook is not None:
            self._hook.load_state_dict(state_dict["hook_statistics"])
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            wiring.set_lr(group, lr)

    # ------------------------------------------------------------------ extras

    def remove_hooks(self) -> None:
        """Detach the forward hook (hook mode) and the optimizer step hook.

        In hook mode the scheduler then has no statistics: a later :meth:`step` raises instead of
        silently switching to full reference passes.
        """
        self._source.remove_hook()
        self._step_hook_handle.remove()

    def reset_statistics(self) -> None:
        """Hook mode: forget the statistics recorded since the last :meth:`step` (e.g. after forward
        passes that were not training with this scheduler's optimizer). A no-op in reference mode.

        Forward passes followed by another optimizer's step (a learning-rate finder's) are dropped
        without this call; see :class:`~lipschitz_lr.head_hook.HeadHook`.
        """
        if self._hook is not None:
            self._hook.reset()

    statistics_source = property(lambda self: self.statistics, doc="The statistics' source (``statistics``).")

    # the statistics' wiring (:class:`~lipschitz_lr.source.StatisticsSource`)
    _model = property(lambda self: self._source.model)
    _loader = property(lambda self: self._source.loader, lambda self, loader: setattr(self._source, "loader", loader))
    _head = property(lambda self: self._source.head)
    _head_name = property(lambda self: self._source.head_name)
    _hook = property(lambda self: self._source.hook)


expose_options(AdaptiveLR)
