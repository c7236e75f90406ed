"""How AdaptiveLR meets torch: the optimizer's param groups (the momentum mapping, writing a rate, clamps
per group and in proportion), the statistics loader (its order, its batch size), the head hook paused
during a reference pass, dynamo's hook guards, and where warnings point."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._checks import real
from .batches import loader_length
from .head_hook import HeadHook
from .options import Options
from .records import Resolved
from .variants import expected_variant

logger = logging.getLogger("lipschitz_lr.adaptive_lr")


def per_group(name: str, value: float | Sequence[float] | None, default: float, n_groups: int) -> list[float]:
    if value is None:
        return [default] * n_groups
    if isinstance(value, (list, tuple)):
        if len(value) != n_groups:
            raise ValueError(
                f"{name} has {len(value)} values but the optimizer has {n_groups} param groups; "
                f"give one value or a list of {n_groups}"
            )
        values = [real(name, v) for v in value]
    else:
        values = [real(name, value)] * n_groups
    for v in values:
        if math.isnan(v) or v < 0:
            raise ValueError(f"requires non-negative {name}, got {name}={value!r}")
    return values


def shuffles(loader: Any) -> bool:
    """Whether a loader visits its data in a random order (a DataLoader's random, subset-random or weighted
    sampler, a shuffling DistributedSampler, or a loader with ``shuffle=True`` such as ``TensorBatches``)."""
    sampler = getattr(loader, "sampler", None)
    random_samplers = (
        torch.utils.data.RandomSampler,
        torch.utils.data.SubsetRandomSampler,
        torch.utils.data.WeightedRandomSampler,
    )
    if isinstance(sampler, random_samplers) or getattr(sampler, "shuffle", False) is True:
        return True
    return getattr(loader, "shuffle", False) is True


def infer_batch_size(loader: Any) -> int | None:
    batch_size = getattr(loader, "batch_size", None)
    if batch_size is None:
        batch_sampler = getattr(loader, "batch_sampler", None)
        batch_size = getattr(batch_sampler, "batch_size", None)
    return int(batch_size) if batch_size is not None else None


def user_stacklevel() -> int:
    """Stack level of the first frame outside this package and torch (for warnings)."""
    import inspect
    import os

    skip = (os.path.dirname(__file__), os.path.dirname(torch.__file__))
    frame, level = inspect.currentframe(), 0
    while frame is not None and (level == 0 or frame.f_code.co_filename.startswith(skip)):
        frame, level = frame.f_back, level + 1
    return level


def guard_module_hooks() -> None:
    """Make dynamo guard on module hooks (process-wide). By default it does not
    (``skip_nnmodule_hook_guards``, pytorch/pytorch#117758): a compiled graph traced for one instance
    of a class is reused for another whose hooks differ, so the head hook would be skipped, or run for
    another model of the same class (an EMA copy, a teacher) and mix its activations into K_z."""
    import torch._dynamo

    if torch._dynamo.config.skip_nnmodule_hook_guards:
        torch._dynamo.config.skip_nnmodule_hook_guards = False
        logger.info(
            "statistics='hook' on a compiled model: set torch._dynamo.config.skip_nnmodule_hook_guards = False "
            "so that compiled graphs are not shared between modules whose hooks differ"
        )


def in_proportion(value: float | Sequence[float] | None, optimizer: Optimizer) -> Any:
    """One clamp value as one per group: the value for the group with the largest initial learning rate, the
    others scaled by their ratio to it (a list of values, or None, is returned as it is)."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    initial = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
    largest = max(initial)
    return [value * lr / largest if largest > 0 else value for lr in initial]


#: What to do instead of composing AdaptiveLR with torch's SequentialLR or ChainedScheduler (which write the
#: learning rate between AdaptiveLR's writes: a warm-up ignored, or 1/K multiplied).
COMPOSED = (
    "AdaptiveLR sets the learning rate itself and is not composable with SequentialLR or ChainedScheduler; "
    "for a warm-up use AdaptiveLR(warmup_steps=N), a linear ramp over the first N optimizer steps towards the "
    "computed rate"
)


def momentum_factor(optimizer: Optimizer, group: dict[str, Any], index: int) -> float:
    """The EMA-momentum mapping of one group: ``(1 - b) / (1 - d)`` for torch's SGD, 1 otherwise."""
    if not isinstance(optimizer, torch.optim.SGD):
        return 1.0
    momentum = float(group.get("momentum", 0.0))
    dampening = float(group.get("dampening", 0.0))
    if momentum <= 0:
        raise ValueError(
            f"variant='momentum' needs an SGD optimizer with momentum > 0, got momentum={momentum!r} in group {index}"
        )
    if dampening >= 1:
        raise ValueError(f"requires dampening < 1 for variant='momentum', got dampening={dampening!r}")
    return (1.0 - momentum) / (1.0 - dampening)


def set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


class hook_paused:
    """Pause a HeadHook (if any) while the reference pass runs."""

    def __init__(self, hook: HeadHook | None) -> None:
        self.hook = hook

    def __enter__(self) -> None:
        if self.hook is not None:
            self.hook.enabled = False

    def __exit__(self, *exc: object) -> None:
        if self.hook is not None:
            self.hook.enabled = True


def resolve(options: Options, optimizer: Optimizer, loader: Any) -> Resolved:
    """What ``options`` come to on this optimizer and loader: one clamp per param group (one value caps the group
    with the largest initial rate and the others in proportion), ``m`` read off the loader when not given, and the
    warm-up in optimizer steps (``warmup_epochs`` counted in the loader's batches)."""
    n_groups = len(optimizer.param_groups)
    low, high = options.min_lr, options.max_lr
    if n_groups > 1:
        low, high = (in_proportion(value, optimizer) for value in (low, high))
    warmup_steps = options.warmup_steps
    if options.warmup_epochs:
        batches = loader_length(loader)
        if batches is None:
            raise ValueError(
                "warmup_epochs counts epochs in the statistics loader's batches, which this loader does not say "
                f"(no len()); give warmup_steps=<optimizer steps> instead, got warmup_epochs={options.warmup_epochs}"
            )
        warmup_steps = options.warmup_epochs * batches
    return Resolved(
        min_lr=tuple(per_group("min_lr", low, 0.0, n_groups)),
        max_lr=tuple(per_group("max_lr", high, math.inf, n_groups)),
        batch_size=options.batch_size if options.batch_size is not None else infer_batch_size(loader),
        warmup_steps=warmup_steps,
    )


def check_optimizer_family(optimizer: Optimizer, variant: str) -> None:
    """Warn when ``variant``'s learning rate assumes another optimizer than ``optimizer``."""
    expected = expected_variant(optimizer)
    if expected is not None and expected != variant:
        detail = " with momentum" if expected == "momentum" else ""
        warnings.warn(
            f"variant={variant!r} with {type(optimizer).__name__}{detail}: each variant's learning rate "
            f"assumes its own optimizer (the paper's {variant!r} bound is not {type(optimizer).__name__}'s); "
            f"use variant={expected!r}",
            stacklevel=user_stacklevel(),
        )


def group_ratios(base_lrs: list[float]) -> list[float]:
    """Each group's initial learning rate over the largest: the ratios the groups keep."""
    base = [float(lr) for lr in base_lrs]
    largest = max(base)
    if not largest > 0:
        raise ValueError(f"requires a positive initial learning rate in some param group, got {base}")
    return [lr / largest for lr in base]
