"""What an :class:`~lipschitz_lr.AdaptiveLR` remembers: one :class:`EpochRecord` per ``step()``, what its options
come to on its optimizer and loader (:class:`Resolved`), and the check of the running state a ``state_dict``
restores (its options, as given, are :class:`~lipschitz_lr.options.Options`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._checks import finite_nonnegative, integer
from .options import Options, names
from .options import _clamp as clamp

__all__ = ["RUNNING_STATE", "EpochRecord", "Resolved", "checked_state", "restored_options", "upgraded_state"]

#: Options that belong to the model and the wiring: a ``state_dict`` must agree on them.
STRUCTURAL = ("variant", "num_classes", "statistics")

#: The running state a ``state_dict`` holds besides the options and the history.
RUNNING_STATE = (
    "last_epoch",
    "_step_count",
    "base_lrs",
    "_last_lr",
    "_epoch_lrs",
    "_k1",
    "_k2",
    "_num_updates",
    "_iteration",
    "_pass_loss",
)


@dataclass(frozen=True)
class Resolved:
    """What the options come to on this optimizer and loader (the options themselves read back as given).

    Args:
        min_lr: one lower clamp per param group (0.0: none); one ``min_lr`` value clamps the group with the largest
            initial rate and the others in proportion; a group added after construction gets 0.0.
        max_lr: the same, upper (``inf``: none).
        batch_size: ``m``: ``batch_size`` as given, else the loader's ``batch_size`` (None: the largest batch seen).
        warmup_steps: the warm-up in optimizer steps: ``warmup_steps``, or ``warmup_epochs`` times the loader's
            number of batches.
    """

    min_lr: tuple[float, ...]
    max_lr: tuple[float, ...]
    batch_size: int | None
    warmup_steps: int

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_groups: int) -> Resolved:
        """The record a ``state_dict`` saved (before it had one, its options were the resolved values), checked."""
        saved = state.get("resolved") or {key: state[key] for key in ("min_lr", "max_lr", "batch_size", "warmup_steps")}
        if not isinstance(saved, dict) or sorted(saved) != ["batch_size", "max_lr", "min_lr", "warmup_steps"]:
            raise ValueError(
                f"state_dict['resolved'] must be a dict of min_lr, max_lr, batch_size and warmup_steps, got {saved!r}"
            )
        clamps = {}
        for key in ("min_lr", "max_lr"):
            value = saved[key]
            if not isinstance(value, (list, tuple)) or len(value) != n_groups:
                raise ValueError(f"state_dict[{key!r}] must hold one clamp per param group ({n_groups}), got {value!r}")
            clamps[key] = clamp(key, tuple(value))  # the option's own check: numbers >= 0, inf allowed
        batch_size = saved["batch_size"]
        return cls(
            min_lr=clamps["min_lr"],
            max_lr=clamps["max_lr"],
            batch_size=None if batch_size is None else integer("batch_size", batch_size, 1),
            warmup_steps=integer("warmup_steps", saved["warmup_steps"], 0),
        )


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
        method_lr: the learning rate the method chose (``1/K``, ``1/L``, ``1/K1``, ...) after the safeguards,
            before the optimizer mapping, group ratios and clamps.
        lr: the value written for the group with the largest initial learning rate, at the
            start of the epoch (before any per-iteration Keras decay).
        note: ``""``, ``"initial_lr"``, ``"clamped"``, ``"guarded"`` (kept the previous LR), ``"limited"``
            (``max_growth`` capped it) or ``"backed off"`` (``backoff`` after a divergence).
        curvature: the smoothness bound ``L = h K_z^2/m + lambda`` (``rule="smooth"``; None otherwise).
        rule_lr: the rule's own rate (``1/K``, ``1/L``, ...) before the safeguards.
        loss: the training loss the reference pass measured (``inf``: not finite; None where it measured none).
    """

    epoch: int
    k_z: float
    s: float
    max_weight_norm: float
    k: float
    method_lr: float
    lr: float
    note: str = ""
    curvature: float | None = None
    rule_lr: float = math.nan
    loss: float | None = None


def checked_state(state: dict[str, Any], n_groups: int) -> dict[str, Any]:
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
        "_pass_loss": _loss(state["_pass_loss"]),
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


def _loss(value: Any) -> float:
    """A pass loss: a float, NaN (not measured) or inf (not finite) included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"state_dict['_pass_loss'] must be a number (NaN: not measured), got {value!r}")
    return float(value)


def upgraded_state(state: dict[str, Any], current: Options) -> dict[str, Any]:
    """A ``state_dict`` in today's layout: the per-group clamps were saved as ``min_lrs``/``max_lrs``; an option
    added since takes its earlier behaviour (``batchnorm="running"``: the passes used the running statistics)."""
    state = dict(state)
    for old, new in (("min_lrs", "min_lr"), ("max_lrs", "max_lr")):
        if old in state and new not in state:
            state[new] = state.pop(old)
    earlier = {
        "momentum_seed": current.momentum_seed,
        "hook_statistics": None,
        "statistics_batches": None,
        "batchnorm": "running",
        "warmup_steps": 0,
        "warmup_epochs": 0,
        "statistics": current.statistics,
        # before the safeguards and the smoothness rule: the paper's rate, unguarded
        "rule": "paper",
        "max_growth": None,
        "backoff": None,
        "_pass_loss": math.nan,
    }
    return {**earlier, **state}


def restored_options(state: dict[str, Any], current: Options, n_groups: int) -> tuple[dict[str, Any], Options]:
    """A ``state_dict`` (upgraded to today's layout) and its checked options, refused when it is not an AdaptiveLR
    state, has another number of param groups, or differs from ``current`` in a :data:`STRUCTURAL` option."""
    state = upgraded_state(state, current)
    missing = [key for key in (*names(), *RUNNING_STATE, "history") if key not in state]
    if missing:
        raise ValueError(f"not an AdaptiveLR state_dict: missing keys {missing}")
    if len(state["base_lrs"]) != n_groups:
        raise ValueError(f"state_dict has {len(state['base_lrs'])} param groups, the optimizer has {n_groups}")
    saved = Options(**{key: state[key] for key in names()})
    for key in STRUCTURAL:
        if getattr(saved, key) != getattr(current, key):
            why = {
                "num_classes": "k is a property of the model's head, and the saved rates and statistics belong to "
                "another model; load it into a scheduler built for the same model",
                "statistics": "the statistics source is wired at construction (a forward hook or a loader)",
            }.get(key, "")
            ours, theirs = getattr(current, key), getattr(saved, key)
            pair = (
                f"of variant {theirs!r} into an AdaptiveLR of variant {ours!r}"
                if key == "variant"
                else f"saved with {key}={theirs!r} into an AdaptiveLR with {key}={ours!r}"
            )
            raise ValueError(f"cannot load a state_dict {pair}" + (f": {why}" if why else ""))
    return state, saved
