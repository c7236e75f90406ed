"""``AdaptiveLR``: the LipschitzLR scheduler, a ``torch.optim.lr_scheduler.LRScheduler``.

References:
    Yedida, Saha, Prashanth. "LipschitzLR: Using theoretically computed adaptive learning rates
    for fast convergence." Applied Intelligence (2021), arXiv:1902.07399.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ._checks import beta, choice, finite_nonnegative, integer, real
from .batches import BatchUnpacker, default_unpack_batch, statistics_loader
from .batches import call_model as default_call_model
from .bounds import LOSSES, MSE_SIGNS, MSESign, loss_coefficient, second_moment_bound, weight_decay_bound
from .distributed import all_reduce_max
from .head_hook import HeadHook
from .models import find_head, head_from_forward, is_compiled, max_weight_norm, model_device, unwrap_model
from .statistics import BATCHNORM_MODES, LipschitzStatistics, collect_statistics
from .variants import VARIANTS, expected_variant

logger = logging.getLogger(__name__)

__all__ = ["AdaptiveLR", "EpochRecord"]

STATISTICS_SOURCES: tuple[str, ...] = ("reference", "hook")
#: A written learning rate outside this range is written with a warning (it comes from degenerate
#: statistics far more often than from a network that wants it).
SANE_LR_RANGE = (1e-6, 1e3)
#: How ``initial_lr`` seeds AdaMo's ``K1``: ``"value"`` (``K1 = x``, the authors' code) or ``"reciprocal"`` (``1/x``).
MOMENTUM_SEEDS: tuple[str, ...] = ("value", "reciprocal")


@dataclass(frozen=True)
class EpochRecord:
    """Diagnostics of one ``step()`` (one epoch).

    Attributes:
        epoch: the epoch this learning rate is for (0 = computed at construction); when
            ``step()`` is called every N optimizer steps instead of every epoch, the period.
        k_z: largest Frobenius norm of a batch of head inputs.
        s: largest Frobenius norm of the elementwise square of a batch of head inputs.
        max_weight_norm: largest Frobenius norm of a single tensor of the model's state.
        k: the Lipschitz bound ``c * K_z + lambda * max_weight_norm`` of this epoch.
        method_lr: the learning rate the method chose (``1/K``, ``1/K1``, ...), before the
            optimizer mapping, group ratios and clamps.
        lr: the value written for the group with the largest initial learning rate, at the
            start of the epoch (before any per-iteration Keras decay).
        note: ``""``, ``"initial_lr"``, ``"clamped"`` or ``"guarded"`` (kept the previous LR).
    """

    epoch: int
    k_z: float
    s: float
    max_weight_norm: float
    k: float
    method_lr: float
    lr: float
    note: str = ""


def _per_group(name: str, value: float | Sequence[float] | None, default: float, n_groups: int) -> list[float]:
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


#: The configuration an ``AdaptiveLR`` saves in its ``state_dict`` (constructor arguments, checked).
_CONFIG_KEYS = (
    "variant",
    "loss",
    "num_classes",
    "weight_decay",
    "initial_lr",
    "momentum_seed",
    "beta1",
    "beta2",
    "eps",
    "bias_correction",
    "keras_decay",
    "batch_size",
    "tau",
    "num_outputs",
    "average_outputs",
    "mse_sign",
    "target_norm",
    "min_lrs",
    "max_lrs",
    "statistics_batches",
    "batchnorm",
    "warmup_steps",
)


def _checked_config(config: dict[str, Any], n_groups: int) -> dict[str, Any]:
    """Validate an ``AdaptiveLR`` configuration (the constructor's arguments or a ``state_dict``'s) and
    return it as plain Python values: a numpy scalar (``np.int64`` from a dataset's attributes, say)
    becomes an ``int`` or ``float``, so checkpoints holding the state load with ``weights_only=True``."""
    c = dict(config)
    c["variant"] = choice("variant", c["variant"], tuple(VARIANTS))
    c["loss"] = choice("loss", c["loss"], LOSSES)
    c["momentum_seed"] = choice("momentum_seed", c["momentum_seed"], MOMENTUM_SEEDS)
    c["mse_sign"] = choice("mse_sign", c["mse_sign"], MSE_SIGNS)
    c["batchnorm"] = choice("batchnorm", c["batchnorm"], BATCHNORM_MODES)
    if c["loss"] == "cross_entropy" and c["num_classes"] is None:
        raise ValueError("loss='cross_entropy' requires num_classes, got num_classes=None")
    if c["num_classes"] is not None:
        c["num_classes"] = integer("num_classes", c["num_classes"], 2)
    if c["bias_correction"] and not VARIANTS[c["variant"]].second_moment:
        raise ValueError(f"bias_correction applies to variant 'rmsprop' or 'adam', got variant={c['variant']!r}")
    if c["initial_lr"] is not None:
        c["initial_lr"] = real("initial_lr", c["initial_lr"])
        if not math.isfinite(c["initial_lr"]) or c["initial_lr"] <= 0:
            raise ValueError(f"requires a finite, positive initial_lr, got initial_lr={c['initial_lr']!r}")
    if c["batch_size"] is not None:
        c["batch_size"] = integer("batch_size", c["batch_size"], 1)
    c["warmup_steps"] = integer("warmup_steps", c["warmup_steps"], 0)
    if c["statistics_batches"] is not None:
        c["statistics_batches"] = integer("statistics_batches", c["statistics_batches"], 1)
    if c["target_norm"] is not None:
        c["target_norm"] = finite_nonnegative("target_norm", c["target_norm"])
    if c["tau"] is not None:
        c["tau"] = real("tau", c["tau"])
    c["weight_decay"] = finite_nonnegative("weight_decay", c["weight_decay"])
    c["beta1"] = beta("beta1", c["beta1"])
    c["beta2"] = beta("beta2", VARIANTS[c["variant"]].default_beta2 if c["beta2"] is None else c["beta2"])
    c["eps"] = finite_nonnegative("eps", c["eps"])
    c["num_outputs"] = integer("num_outputs", c["num_outputs"], 1)
    for key in ("bias_correction", "keras_decay", "average_outputs"):
        if not isinstance(c[key], (bool, np.bool_)):
            raise ValueError(f"requires True or False for {key}, got {key}={c[key]!r}")
        c[key] = bool(c[key])
    c["min_lrs"] = _per_group("min_lr", c["min_lrs"], 0.0, n_groups)
    c["max_lrs"] = _per_group("max_lr", c["max_lrs"], math.inf, n_groups)
    for i, (low, high) in enumerate(zip(c["min_lrs"], c["max_lrs"], strict=True)):
        if low > high:
            raise ValueError(f"min_lr must not exceed max_lr, got min_lr={low!r} > max_lr={high!r} for group {i}")
    # The loss arguments (tau for quantile, ...), checked now rather than at the first step.
    loss_coefficient(
        c["loss"],
        c["batch_size"] or 1,
        num_classes=c["num_classes"],
        tau=c["tau"],
        num_outputs=c["num_outputs"],
        average_outputs=c["average_outputs"],
        mse_sign=c["mse_sign"],
    )
    return c


def _shuffles(loader: Any) -> bool:
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


def _checked_state(state: dict[str, Any], n_groups: int) -> dict[str, Any]:
    """Validate the running state of a ``state_dict`` (everything but the configuration)."""

    def rates(key: str, allow_empty: bool = False) -> list[float]:
        values = state[key]
        if not isinstance(values, (list, tuple)) or (len(values) != n_groups and not (allow_empty and not values)):
            raise ValueError(f"state_dict[{key!r}] must be a list of {n_groups} learning rates, got {values!r}")
        return [finite_nonnegative(key, v) for v in values]

    checked = {
        "last_epoch": integer("last_epoch", state["last_epoch"], 0),
        "_step_count": integer("_step_count", state["_step_count"], 0),
        "base_lrs": rates("base_lrs"),
        "_last_lr": rates("_last_lr"),
        "_epoch_lrs": rates("_epoch_lrs", allow_empty=True),
        "_k1": finite_nonnegative("_k1", state["_k1"]),
        "_k2": finite_nonnegative("_k2", state["_k2"]),
        "_num_updates": integer("_num_updates", state["_num_updates"], 0),
        "_iteration": integer("_iteration", state["_iteration"], 0),
    }
    try:
        checked["history"] = [EpochRecord(**record) for record in state["history"]]
    except TypeError as error:
        raise ValueError(f"state_dict['history'] must be a list of EpochRecord fields: {error}") from error
    if len(checked["history"]) != checked["last_epoch"] + 1:
        raise ValueError(
            f"state_dict['history'] has {len(checked['history'])} records but last_epoch is {checked['last_epoch']}"
        )
    return checked


def _infer_batch_size(loader: Any) -> int | None:
    batch_size = getattr(loader, "batch_size", None)
    if batch_size is None:
        batch_sampler = getattr(loader, "batch_sampler", None)
        batch_size = getattr(batch_sampler, "batch_size", None)
    return int(batch_size) if batch_size is not None else None


def _user_stacklevel() -> int:
    """Stack level of the first frame outside this package and torch (for warnings)."""
    import inspect
    import os

    skip = (os.path.dirname(__file__), os.path.dirname(torch.__file__))
    frame, level = inspect.currentframe(), 0
    while frame is not None and (level == 0 or frame.f_code.co_filename.startswith(skip)):
        frame, level = frame.f_back, level + 1
    return level


def _guard_module_hooks() -> None:
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


def _in_proportion(value: float | Sequence[float] | None, optimizer: Optimizer) -> Any:
    """One clamp value as one per group: the value for the group with the largest initial learning rate, the
    others scaled by their ratio to it (a list of values, or None, is returned as it is)."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    initial = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
    largest = max(initial)
    return [value * lr / largest if largest > 0 else value for lr in initial]


#: What to do instead of composing AdaptiveLR with torch's SequentialLR or ChainedScheduler (which write the
#: learning rate between AdaptiveLR's writes: a warm-up ignored, or 1/K multiplied).
_COMPOSED = (
    "AdaptiveLR sets the learning rate itself and is not composable with SequentialLR or ChainedScheduler; "
    "for a warm-up use AdaptiveLR(warmup_steps=N), a linear ramp over the first N optimizer steps towards the "
    "computed rate"
)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _momentum_factor(optimizer: Optimizer, group: dict[str, Any], index: int) -> float:
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


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


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
        loss: one of ``"cross_entropy"`` (default), ``"binary_cross_entropy"``, ``"mse"``,
            ``"mae"``, ``"quantile"``.
        num_classes: ``k``, required for cross-entropy.
        variant: ``"sgd"`` (default), ``"momentum"`` (AdaMo), ``"rmsprop"`` or ``"adam"``.
        weight_decay: ``lambda`` of the L2 term (the paper's "weight decay"). Default 0.
        statistics: ``"reference"`` (default, an extra eval pass) or ``"hook"``.
        batchnorm: how BatchNorm layers normalise in the reference pass (and in hook mode's epoch-0
            pass). ``"batch"`` (default): each batch by its own statistics, as in training, with the
            running statistics left untouched; safe from the first epoch. ``"running"``: their running
            statistics (eval mode), the paper's convention; at initialisation these are 0 and 1, and
            in many modern networks the head's inputs then nearly vanish (torchvision
            mobilenet_v3_small: K_z 1e-7, a first rate of 1.7e8, against 5.5 and 3.2 with ``"batch"``;
            ``benchmarks/batchnorm_modes.py``).
            The paper's ResNet-164 logged 2.3e-8 for its first epoch: the same artefact.
        head: the module whose inputs are the penultimate activations, or its dotted name. Default: the
            ``nn.Linear`` that produces the model's output in a forward pass of the loader's first batch
            (without a loader, the last ``nn.Linear`` registered); logged with its name. For a head
            applied per token (inputs batch x tokens x features), ``m`` counts every (batch, token)
            row, as a loss averaged over tokens does (an explicit ``batch_size`` is taken as given).
            A convolution is refused as head; for a functional head (``F.linear``, a cosine
            classifier) name an ``nn.Identity()`` placed before it.
        batch_size: ``m``; default ``loader.batch_size``, else the largest batch seen.
        initial_lr: epoch-0 learning rate. ``None`` (default) computes it from the initial
            weights. A value is used for epoch 0 as is; for ``"momentum"`` it also seeds ``K1``
            (the paper's ``x``, see ``momentum_seed``); for ``"rmsprop"``/``"adam"`` the EMAs then
            start at epoch 1.
        momentum_seed: how ``initial_lr = x`` seeds AdaMo's ``K1`` (``variant="momentum"``).
            ``"value"`` (default): ``K1 = x``, as the authors' code (``if epoch == 0: K1 = x;
            return x``), so epoch 1 gets ``1/(beta1 x + (1-beta1) K)``. ``"reciprocal"``:
            ``K1 = 1/x``, the seed consistent with ``lr = 1/K1``.
        beta1: EMA factor of ``K1`` (momentum, adam). Default 0.9.
        beta2: EMA factor of ``K2``; default 0.9 for rmsprop (Keras ``rho``), 0.999 for adam.
        eps: added to ``sqrt(K2)``. Default 1e-7 (Keras).
        bias_correction: divide the EMAs by ``1 - beta**n`` (rmsprop, adam). Default False.
        keras_decay: also divide the learning rate every optimizer step by ``1 + lambda * t``,
            ``t`` the global iteration count, as the authors' Keras code did through the
            optimizer's ``decay`` argument. Default False (clean); True for faithful reproduction.
        warmup_steps: a linear warm-up over the first ``N`` optimizer steps: step ``t`` uses the computed
            rate times ``min(1, (t + 1) / N)``, towards whatever rate each epoch computes, in reference
            and hook mode alike; saved in ``state_dict``. Default 0 (none, the paper's). AdaptiveLR
            cannot be composed with torch's ``SequentialLR``/``ChainedScheduler`` (they write the rate
            between its writes): it refuses a rate it did not write, naming this option.
        warmup_epochs: the same over whole epochs, counted as ``warmup_epochs * len(loader)`` optimizer
            steps (the statistics loader is the training set at the training batch size: one batch per
            step; with gradient accumulation give ``warmup_steps``). Saved as ``warmup_steps``.
        min_lr, max_lr: clamps. One value clamps the group with the largest initial learning rate and the
            others in proportion, so the groups keep their ratios; a list gives one clamp per group.
            Default none. Groups added later (``optimizer.add_param_group``) take their ratio, unclamped.
        tau: quantile level, required for ``loss="quantile"``.
        num_outputs, average_outputs: for ``loss="mae"``.
        mse_sign: ``"plus"`` (valid bound, default) or ``"minus"`` (authors' code).
        target_norm: ``||y||`` for ``loss="mse"``; default the largest batch target norm seen by
            the reference pass. Required for MSE with ``statistics="hook"``.
        statistics_batches: the reference pass reads only the loader's first ``N`` batches, a fixed
            subset, instead of all of them (cheaper for large datasets; beyond the paper, whose
            ``K_z`` is a maximum over every batch, so the subset's ``K_z`` is at most the full one
            and the learning rate at least as large). Default ``None``: every batch.
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
        loss: str = "cross_entropy",
        num_classes: int | None = None,
        variant: str = "sgd",
        weight_decay: float = 0.0,
        statistics: str = "reference",
        batchnorm: str = "batch",
        head: nn.Module | str | None = None,
        batch_size: int | None = None,
        initial_lr: float | None = None,
        momentum_seed: str = "value",
        beta1: float = 0.9,
        beta2: float | None = None,
        eps: float = 1e-7,
        bias_correction: bool = False,
        keras_decay: bool = False,
        warmup_steps: int = 0,
        warmup_epochs: int = 0,
        min_lr: float | Sequence[float] | None = None,
        max_lr: float | Sequence[float] | None = None,
        tau: float | None = None,
        num_outputs: int = 1,
        average_outputs: bool = False,
        mse_sign: MSESign = "plus",
        target_norm: float | None = None,
        statistics_batches: int | None = None,
        distributed: bool | None = None,
        device: torch.device | str | None = None,
        unpack_batch: BatchUnpacker | None = None,
        call_model: Callable[[nn.Module, Any], Any] | None = None,
        last_epoch: int = -1,
    ) -> None:
        if statistics not in STATISTICS_SOURCES:
            raise ValueError(f"unknown statistics {statistics!r}; expected one of {', '.join(STATISTICS_SOURCES)}")
        if dataset is not None:
            if loader is not None:
                raise ValueError("give the statistics a loader or a dataset, not both")
            if batch_size is None:
                raise ValueError("dataset= requires batch_size (m, the training batch size), got batch_size=None")
            device_for_loader = device if device is not None else model_device(unwrap_model(model))
            loader = statistics_loader(dataset, integer("batch_size", batch_size, 1), device_for_loader)
        if warmup_epochs:
            integer("warmup_epochs", warmup_epochs, 0)
            if warmup_steps:
                raise ValueError(f"give warmup_steps or warmup_epochs, not both, got {warmup_steps=}, {warmup_epochs=}")
            if not hasattr(loader, "__len__"):
                raise ValueError(
                    "warmup_epochs counts epochs in the statistics loader's batches, which this loader does not say "
                    f"(no len()); give warmup_steps=<optimizer steps> instead, got {warmup_epochs=}"
                )
            warmup_steps = warmup_epochs * len(loader)
        if isinstance(loader, Iterator):
            raise ValueError(
                f"the statistics loader is an iterator ({type(loader).__name__}): it is used up after one pass, so "
                "every later epoch would see no batch; give a re-iterable loader (a DataLoader, a list of batches)"
            )
        if statistics == "reference" and loader is None:
            raise ValueError("statistics='reference' requires a loader of the training set, got loader=None")
        if statistics == "hook" and loader is None and initial_lr is None:
            raise ValueError(
                "statistics='hook' without a loader has no statistics before training: give a "
                "loader for epoch 0 or an initial_lr"
            )
        if loss == "mse" and statistics == "hook" and target_norm is None:
            raise ValueError("loss='mse' with statistics='hook' requires target_norm (forward hooks see no targets)")
        n_groups = len(optimizer.param_groups)
        if n_groups > 1:  # one clamp value caps the largest group; the others in proportion, keeping the ratios
            min_lr, max_lr = (_in_proportion(value, optimizer) for value in (min_lr, max_lr))
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
        config = _checked_config(
            {
                "variant": variant,
                "loss": loss,
                "num_classes": num_classes,
                "weight_decay": weight_decay,
                "initial_lr": initial_lr,
                "momentum_seed": momentum_seed,
                "beta1": beta1,
                "beta2": beta2,
                "eps": eps,
                "bias_correction": bias_correction,
                "keras_decay": keras_decay,
                "batch_size": batch_size if batch_size is not None else _infer_batch_size(loader),
                "tau": tau,
                "num_outputs": num_outputs,
                "average_outputs": average_outputs,
                "mse_sign": mse_sign,
                "target_norm": target_norm,
                "min_lrs": min_lr,
                "max_lrs": max_lr,
                "statistics_batches": statistics_batches,
                "batchnorm": batchnorm,
                "warmup_steps": warmup_steps,
            },
            n_groups,
        )
        # Configuration (plain values: saved in state_dict, like torch schedulers do).
        for key, value in config.items():
            setattr(self, key, value)

        # State.
        self.history: list[EpochRecord] = []
        self._k1 = 0.0
        self._k2 = 0.0
        self._num_updates = 0
        self._iteration = 0
        self._epoch_lrs: list[float] = []

        # Runtime objects: never in state_dict.
        self._model = model
        self._loader = loader
        self._statistics_source = statistics
        self._device = device
        self._unpack_batch = unpack_batch or default_unpack_batch
        self._call_model = call_model or default_call_model
        self._head, self._head_name = self._find_head(unwrap_model(model), head, loader)
        self._distributed = distributed
        self._momentum_factors = self._momentum_mapping(optimizer) if variant == "momentum" else [1.0] * n_groups
        self._check_head_outputs()
        self._check_optimizer_family(optimizer)
        if statistics == "reference" and _shuffles(loader):
            warnings.warn(
                f"the statistics loader ({type(loader).__name__}) shuffles: K_z is a maximum over its batches, so "
                "it changes from epoch to epoch with the order; give AdaptiveLR an in-order loader of the clean "
                "training set (shuffle=False, no augmentation) at the training batch size",
                stacklevel=_user_stacklevel(),
            )
        self._warned_batch_rows = False
        self._batch_size_inferred = batch_size is None  # read off the loader: examples, not tokens
        self._warned_per_batch = False
        self._steps_since_step = 0
        self._hook_removed = False
        self._hook: HeadHook | None = HeadHook(self._head, optimizer) if statistics == "hook" else None
        if self._hook is not None and is_compiled(model):
            _guard_module_hooks()
        self._step_hook_handle = optimizer.register_step_pre_hook(self._before_optimizer_step)
        super().__init__(optimizer, last_epoch)

    # ------------------------------------------------------------------ helpers

    def _find_head(self, model: nn.Module, head: nn.Module | str | None, loader: Any) -> tuple[nn.Module, str]:
        """The head: as named, else the ``nn.Linear`` that produces the output in a forward pass of the loader's
        first batch, else (no loader) the last ``nn.Linear`` registered. Logged with its name."""
        found = None
        if head is None and loader is not None and any(isinstance(m, nn.Linear) for m in model.modules()):
            first = next(iter(loader), None)
            if first is not None:
                found = head_from_forward(
                    model, first, unpack_batch=self._unpack_batch, call=self._call_model, device=self._device
                )
        module = found or find_head(model, head)
        name = next((n for n, m in model.named_modules() if m is module), type(module).__name__) or "(the model)"
        how = "named" if head is not None else "the output layer of a forward pass" if found else "the last nn.Linear"
        logger.info("AdaptiveLR head: %s = %s (%s)", name, module, how)
        return module, name

    @staticmethod
    def _momentum_mapping(optimizer: Optimizer) -> list[float]:
        return [_momentum_factor(optimizer, group, i) for i, group in enumerate(optimizer.param_groups)]

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
            factor = _momentum_factor(self.optimizer, group, offset) if self.variant == "momentum" else 1.0
            self.base_lrs.append(initial)
            self._ratios.append(initial / largest)
            self._momentum_factors.append(factor)
            self.min_lrs.append(0.0)
            self.max_lrs.append(math.inf)
            self._epoch_lrs.append(reference * factor * initial / largest)
            self._last_lr.append(self._epoch_lrs[-1] * self._step_factor())
            _set_lr(group, self._last_lr[-1])
        logger.info("AdaptiveLR: %d param group(s) added after construction take their ratio", len(added))

    def _check_head_outputs(self) -> None:
        outputs = getattr(self._head, "out_features", None)
        if self.loss == "cross_entropy" and isinstance(outputs, int) and outputs != self.num_classes:
            raise ValueError(
                f"num_classes={self.num_classes} but the head {self._head_name!r} ({self._head}) has {outputs} "
                "outputs; num_classes is k in the bound (k-1)/(k m) and must equal the number of logits. If that "
                "layer is not the output layer, name the right one: head='<dotted name>'"
            )

    def _check_optimizer_family(self, optimizer: Optimizer) -> None:
        expected = expected_variant(optimizer)
        if expected is not None and expected != self.variant:
            detail = " with momentum" if expected == "momentum" else ""
            warnings.warn(
                f"variant={self.variant!r} with {type(optimizer).__name__}{detail}: each variant's learning rate "
                f"assumes its own optimizer (the paper's {self.variant!r} bound is not {type(optimizer).__name__}'s); "
                f"use variant={expected!r}",
                stacklevel=_user_stacklevel(),
            )

    def _per_token(self, stats: LipschitzStatistics) -> bool:
        """A head applied per token: ``m`` was read off the loader (examples per batch), and the largest batch
        reached the head as a whole multiple of it (examples x tokens rows)."""
        rows, m = stats.batch_rows, self.batch_size
        return self._batch_size_inferred and m is not None and rows > m and rows % m == 0

    def _rows_per_batch(self, stats: LipschitzStatistics) -> float:
        """``m`` of the bound: the batch size, or every (example, token) row of a per-token head's batch."""
        return stats.batch_rows if self.batch_size is None or self._per_token(stats) else self.batch_size

    def _check_batch_rows(self, stats: LipschitzStatistics, epoch: int) -> None:
        """Warn (once) when the largest batch the statistics saw is not ``m`` rows."""
        if self.batch_size is None or stats.batch_rows == self.batch_size or self._warned_batch_rows:
            return
        if self._per_token(stats):
            return
        self._warned_batch_rows = True
        warnings.warn(
            f"AdaptiveLR epoch {epoch}: the largest batch that reached the head had {stats.batch_rows} rows, but "
            f"batch_size (m) is {self.batch_size}. K_z is the norm of a whole batch and the bound divides by m, so "
            "the learning rate is wrong unless the statistics batches have the training batch size; give a loader "
            "with batch_size=m (or pass the batch_size the training loop uses)",
            RuntimeWarning,
            stacklevel=_user_stacklevel(),
        )

    def _group_ratios(self) -> list[float]:
        base = [float(lr) for lr in self.base_lrs]
        largest = max(base)
        if not largest > 0:
            raise ValueError(f"requires a positive initial learning rate in some param group, got {base}")
        return [lr / largest for lr in base]

    def _is_distributed(self) -> bool:
        if self._distributed is not None:
            return self._distributed
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _collect(self, epoch: int) -> LipschitzStatistics | None:
        distributed = self._is_distributed()
        if self._hook_removed and epoch > 0:
            raise RuntimeError(
                "statistics='hook', but remove_hooks() detached the forward hook: this scheduler has no statistics "
                "for this epoch (it would not silently switch to full reference passes); build a new AdaptiveLR"
            )
        if self._hook is not None and epoch > 0:
            stats = self._hook.accumulator.result(max_weight_norm(unwrap_model(self._model)))
            self._hook.accumulator.reset()
        elif self._loader is not None:
            with _hook_paused(self._hook):
                stats = collect_statistics(
                    self._model,
                    self._loader,
                    head=self._head,
                    device=self._device,
                    unpack_batch=self._unpack_batch,
                    call=self._call_model,
                    allow_empty=distributed,
                    max_batches=self.statistics_batches,
                    batchnorm=self.batchnorm,
                )
        else:
            return None
        if distributed:
            stats = all_reduce_max(stats, self._device or model_device(unwrap_model(self._model)))
        if stats.batch_rows == 0:
            compiled = ""
            if self._hook is not None and is_compiled(self._model):
                compiled = (
                    ". The model is torch.compile'd, and a graph dynamo compiled before the head hook was "
                    "registered does not run it (pytorch/pytorch#117758): create AdaptiveLR before the first "
                    "compiled call, call torch._dynamo.reset() once it is created, or use statistics='reference'"
                )
            frozen = (
                ". The head is in eval mode, and the hook records only training-mode passes (a frozen head, as in "
                "a linear probe, never trains): use statistics='reference', or model.train() before the epoch"
                if self._hook is not None and not self._head.training
                else ""
            )
            raise ValueError(
                f"no batch reached the head ({type(self._head).__name__}) during epoch {epoch}: "
                "with statistics='hook', step() must follow an epoch of training forward passes; "
                f"otherwise the loader is empty{frozen}{compiled}"
            )
        self._check_batch_rows(stats, epoch)
        return stats

    def _bounds(self, stats: LipschitzStatistics) -> tuple[float, float]:
        """(K_*, S_*) of one epoch; NaN when a statistic is not finite or ``K_z`` is 0 (guarded by the caller:
        with every head input zero, dead ReLUs say, only the weight term would remain and ``1/(lambda K_w)``
        is no learning rate of the method)."""
        if not all(math.isfinite(v) for v in (stats.k_z, stats.s, stats.output_norm, stats.max_weight_norm)):
            return math.nan, math.nan
        if stats.k_z == 0:
            return math.nan, math.nan
        target_norm = self.target_norm if self.target_norm is not None else stats.target_norm
        c = loss_coefficient(
            self.loss,
            self._rows_per_batch(stats),
            num_classes=self.num_classes,
            tau=self.tau,
            num_outputs=self.num_outputs,
            average_outputs=self.average_outputs,
            output_bound=stats.output_norm,
            target_norm=target_norm,
            mse_sign=self.mse_sign,
        )
        k = c * stats.k_z + weight_decay_bound(self.weight_decay, stats.max_weight_norm)
        s = second_moment_bound(c, stats.k_z, stats.s, self.weight_decay, stats.max_weight_norm)
        return k, s

    def _method_lr(self, epoch: int, k: float, s: float, k_z: float) -> tuple[float, str]:
        """Advance the EMAs with this epoch's bounds and return the method's learning rate."""
        if epoch == 0 and self.initial_lr is not None:
            if self.variant == "momentum":
                self._k1 = self.initial_lr if self.momentum_seed == "value" else 1.0 / self.initial_lr
            return self.initial_lr, "initial_lr"
        if not (math.isfinite(k) and math.isfinite(s) and math.isfinite(k_z)):
            return math.nan, ""
        variant = VARIANTS[self.variant]
        k1, k2 = self._k1, self._k2
        if variant.uses_emas:
            self._num_updates += 1
            self._k1 = k1 = self.beta1 * self._k1 + (1.0 - self.beta1) * k
            self._k2 = k2 = self.beta2 * self._k2 + (1.0 - self.beta2) * s
            if self.bias_correction:
                k1 /= 1.0 - self.beta1**self._num_updates
                k2 /= 1.0 - self.beta2**self._num_updates
        return variant.learning_rate(k, k1, k2, k_z, self.eps), ""

    def _step_factor(self) -> float:
        """The factor on the epoch's rates at optimizer step ``_iteration``: the Keras decay
        ``1 / (1 + lambda t)`` and the warm-up ``min(1, (t + 1) / warmup_steps)``."""
        keras = 1.0 / (1.0 + self.weight_decay * self._iteration) if self.keras_decay else 1.0
        warmup = min(1.0, (self._iteration + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return keras * warmup

    def _check_rates_are_ours(self, when: str) -> None:
        """Refuse a learning rate that someone else wrote since this scheduler's last write."""
        for index, (group, ours) in enumerate(zip(self.optimizer.param_groups, self._last_lr, strict=True)):
            current = float(group["lr"])
            if not math.isclose(current, ours, rel_tol=1e-9, abs_tol=1e-15):
                raise ValueError(
                    f"AdaptiveLR wrote lr={ours!r} into param group {index}, but it holds {current!r} {when}: "
                    f"another scheduler or the training code changed it. {_COMPOSED}"
                )

    def _before_optimizer_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self._steps_since_step += 1
        if not self._epoch_lrs:
            return
        self._sync_groups()
        self._check_rates_are_ours("at this optimizer step")
        if self.keras_decay or (self.warmup_steps and self._iteration <= self.warmup_steps):
            factor = self._step_factor()
            for group, lr in zip(optimizer.param_groups, self._epoch_lrs, strict=True):
                _set_lr(group, lr * factor)
            self._last_lr = [float(lr * factor) for lr in self._epoch_lrs]
        self._iteration += 1

    def _initial_step(self) -> None:
        if getattr(self, "_initial_step_done", False):  # SequentialLR's second initial step
            raise ValueError(f"AdaptiveLR cannot be composed with other schedulers. {_COMPOSED}")
        self._initial_step_done = True
        super()._initial_step()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is not None:  # SequentialLR switching to this scheduler at its milestone
            raise ValueError(f"AdaptiveLR cannot be composed with other schedulers. {_COMPOSED}")
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
                f"AdaptiveLR.step() takes no epoch (the LR depends on the model), got epoch={epoch!r}. {_COMPOSED}"
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
        batches = len(self._loader) if self._loader is not None and hasattr(self._loader, "__len__") else 0
        if self._hook is None and self._steps_since_step == 1 and batches >= 8 and not self._warned_per_batch:
            self._warned_per_batch = True
            warnings.warn(
                f"AdaptiveLR.step() after one optimizer step, but in reference mode every step() is a full pass "
                f"over the statistics loader ({batches} batches): call it once per epoch (Lightning: "
                "interval='epoch'), or use statistics='hook' to update every N optimizer steps",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )

    def _advance(self, epoch: int) -> None:
        """Epoch ``epoch``'s statistics, bounds and learning rates (into ``_epoch_lrs`` and :attr:`history`)."""
        if not hasattr(self, "_ratios"):  # the first step, from LRScheduler.__init__
            self._ratios = self._group_ratios()
        stats = self._collect(epoch)
        if stats is None:
            k_z = s_max = weight = k = s = math.nan
        else:
            k_z, s_max, weight = stats.k_z, stats.s, stats.max_weight_norm
            k, s = self._bounds(stats)
        method_lr, note = self._method_lr(epoch, k, s, k_z)

        previous = self._epoch_lrs or [float(lr) for lr in self.base_lrs]
        if not (math.isfinite(method_lr) and method_lr > 0):
            message = (
                f"AdaptiveLR epoch {epoch}: computed learning rate {method_lr!r} (K_z={k_z!r}, "
                f"K={k!r}) is not finite and positive; keeping the previous learning rates {previous}"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=_user_stacklevel())
            lrs, note = list(previous), "guarded"
        else:
            lrs = []
            for ratio, factor, low, high in zip(
                self._ratios, self._momentum_factors, self.min_lrs, self.max_lrs, strict=True
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
        )
        self.history.append(record)
        low, high = SANE_LR_RANGE
        if note != "guarded" and not low <= record.lr <= high:
            hint = (
                " BatchNorm layers normalised by their running statistics (batchnorm='running'), which at "
                "initialisation are 0 and 1: batchnorm='batch' (the default) uses each batch's own."
                if self.batchnorm == "running" and _has_batchnorm(self._model)
                else ""
            )
            warnings.warn(
                f"AdaptiveLR epoch {epoch}: the learning rate {record.lr:.3g} is outside [{low:g}, {high:g}] "
                f"(K_z={k_z:.3g}, K={k:.3g}, head {type(self._head).__name__}): degenerate statistics?{hint} "
                "initial_lr, min_lr and max_lr bound the rate",
                RuntimeWarning,
                stacklevel=_user_stacklevel(),
            )
        logger.info(
            "AdaptiveLR epoch %d: K_z=%.6g max_weight_norm=%.6g K=%.6g lr=%.6g %s",
            epoch,
            k_z,
            weight,
            k,
            record.lr,
            note,
        )

    _STATE_KEYS = (
        *_CONFIG_KEYS,
        "last_epoch",
        "_step_count",
        "base_lrs",
        "_last_lr",
        "_epoch_lrs",
        "_k1",
        "_k2",
        "_num_updates",
        "_iteration",
    )

    def state_dict(self) -> dict[str, Any]:
        """Configuration and state as plain values: no model, loader, hooks or optimizer.

        In hook mode the statistics gathered so far in the current epoch are included, so a
        checkpoint written mid-epoch resumes with them.
        """
        state = {key: getattr(self, key) for key in self._STATE_KEYS}
        state["base_lrs"] = [float(lr) for lr in self.base_lrs]
        state["_last_lr"] = [float(lr) for lr in self._last_lr]
        state["history"] = [asdict(record) for record in self.history]
        state["hook_statistics"] = self._hook.state_dict() if self._hook is not None else None
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, check it, and write the restored learning rate into the optimizer.

        The variant and ``num_classes`` (a property of the model's head) must match this instance's.
        Other configuration in the state (``weight_decay``, ``batch_size``, ...) replaces this
        instance's, as torch schedulers do, with a
        warning naming each value that changes. Every value is checked as the constructor checks it.
        The restored learning rate is written into the optimizer's param groups, so the common resume
        order (load the optimizer, build the scheduler, load the scheduler) trains the next epoch at
        the saved rate rather than at the one computed at construction.
        """
        state_dict = {
            "momentum_seed": self.momentum_seed,
            "hook_statistics": None,
            "statistics_batches": None,
            "batchnorm": "running",  # a state saved before the option: its passes used the running statistics
            "warmup_steps": 0,
            **state_dict,
        }
        missing = [key for key in (*self._STATE_KEYS, "history") if key not in state_dict]
        if missing:
            raise ValueError(f"not an AdaptiveLR state_dict: missing keys {missing}")
        if state_dict["variant"] != self.variant:
            raise ValueError(
                f"cannot load a state_dict of variant {state_dict['variant']!r} into an AdaptiveLR "
                f"of variant {self.variant!r}"
            )
        n_groups = len(self.optimizer.param_groups)
        if len(state_dict["base_lrs"]) != n_groups:
            raise ValueError(f"state_dict has {len(state_dict['base_lrs'])} param groups, the optimizer has {n_groups}")
        config = _checked_config({key: state_dict[key] for key in _CONFIG_KEYS}, n_groups)
        if config["num_classes"] != self.num_classes:
            raise ValueError(
                f"cannot load a state_dict saved with num_classes={config['num_classes']!r} into an AdaptiveLR with "
                f"num_classes={self.num_classes!r}: k is a property of the model's head, and the saved rates and "
                "statistics belong to another model; load it into a scheduler built for the same model"
            )
        changed = [f"{k} {getattr(self, k)!r} -> {new!r}" for k, new in config.items() if getattr(self, k) != new]
        if changed:
            warnings.warn(
                "AdaptiveLR.load_state_dict replaces this scheduler's configuration with the saved one: "
                + "; ".join(changed),
                stacklevel=_user_stacklevel(),
            )
        state = _checked_state(state_dict, n_groups)
        for key, value in {**config, **state}.items():
            setattr(self, key, value)
        self._ratios = self._group_ratios()
        if state_dict["hook_statistics"] is not None and self._hook is not None:
            self._hook.load_state_dict(state_dict["hook_statistics"])
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            _set_lr(group, lr)

    # ------------------------------------------------------------------ extras

    def remove_hooks(self) -> None:
        """Detach the forward hook (hook mode) and the optimizer step hook.

        In hook mode the scheduler then has no statistics: a later :meth:`step` raises instead of
        silently switching to full reference passes.
        """
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
            self._hook_removed = True
        self._step_hook_handle.remove()

    def reset_statistics(self) -> None:
        """Hook mode: forget the statistics recorded since the last :meth:`step` (e.g. after forward
        passes that were not training with this scheduler's optimizer). A no-op in reference mode.

        Forward passes followed by another optimizer's step (a learning-rate finder's) are dropped
        without this call; see :class:`~lipschitz_lr.head_hook.HeadHook`.
        """
        if self._hook is not None:
            self._hook.reset()

    @property
    def statistics_source(self) -> str:
        return self._statistics_source


class _hook_paused:
    """Pause a HeadHook (if any) while the reference pass runs."""

    def __init__(self, hook: HeadHook | None) -> None:
        self.hook = hook

    def __enter__(self) -> None:
        if self.hook is not None:
            self.hook.enabled = False

    def __exit__(self, *exc: object) -> None:
        if self.hook is not None:
            self.hook.enabled = True
