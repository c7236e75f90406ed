"""AdaptiveLR's options: one frozen, validated object, grouped by concern.

:class:`Options` is the one list of what an :class:`~lipschitz_lr.AdaptiveLR` can be told besides
its wiring (optimizer, model, loader, ...). Each field carries its concern and its documentation;
from it derive the keyword arguments ``AdaptiveLR`` accepts (and shows in its signature), their
validation, the options part of its ``state_dict`` and the ``Options:`` section of its docstring.
Hyper-parameters only: the running state (the EMAs, the history) lives in the scheduler.

Example:
    >>> options = Options(num_classes=10, variant="adam")
    >>> options.beta2  # the variant's default, resolved
    0.999
    >>> options.replace(warmup_steps=100).warmup_steps
    100
    >>> Options(variant="adamw")
    Traceback (most recent call last):
    ...
    ValueError: unknown variant 'adamw'; expected one of sgd, momentum, rmsprop, adam
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import beta, choice, finite_nonnegative, integer, real
from .bounds import CURVATURES, LOSSES, MSE_SIGNS, loss_coefficient
from .statistics import BATCHNORM_MODES, HEAD_ROWS
from .variants import VARIANTS

__all__ = ["GROUPS", "MOMENTUM_SEEDS", "RULES", "STATISTICS_SOURCES", "Options", "options_doc"]

STATISTICS_SOURCES: tuple[str, ...] = ("reference", "hook")
#: How the bounds become a rate (``rule``): the paper's ``1/K``, or ours, ``1/L``
#: (:func:`~lipschitz_lr.bounds.smoothness_bound`).
RULES: tuple[str, ...] = ("paper", "smooth")
#: How ``initial_lr`` seeds AdaMo's ``K1``: ``"value"`` (``K1 = x``, the authors' code) or ``"reciprocal"`` (``1/x``).
MOMENTUM_SEEDS: tuple[str, ...] = ("value", "reciprocal")
#: The variants whose rate is ``1/K`` (or ``1/L``): the ones ``rule`` applies to.
SMOOTH_VARIANTS: tuple[str, ...] = ("sgd", "momentum")
#: The concerns the options are grouped by, in the docstring's order.
GROUPS: dict[str, str] = {
    "loss": "The loss and its bound",
    "variant": "The variant and its EMAs",
    "rule": "The rule and its safeguards (beyond the paper)",
    "statistics": "The statistics",
    "safety": "Clamps, warm-up and the Keras decay",
}


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"requires True or False for {name}, got {name}={value!r}")
    return bool(value)


def _clamp(name: str, value: Any) -> float | tuple[float, ...] | None:
    """One clamp (the group with the largest initial rate; the others in proportion) or one per group."""
    if value is None:
        return None
    values = [real(name, v) for v in value] if isinstance(value, (list, tuple)) else [real(name, value)]
    if any(math.isnan(v) or v < 0 for v in values):
        raise ValueError(f"requires non-negative {name}, got {name}={value!r}")
    return tuple(values) if isinstance(value, (list, tuple)) else values[0]


def _positive(name: str, value: Any) -> float:
    """A finite float > 0."""
    number = real(name, value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"requires a finite, positive {name}, got {name}={value!r}")
    return number


def _factor(low: float, high: float) -> Callable[[str, Any], float | None]:
    """A factor in ``(low, high)`` (exclusive), or None (off)."""

    def check(name: str, value: Any) -> float | None:
        if value is None:
            return None
        number = real(name, value)
        if not low < number < high:
            raise ValueError(f"requires {low:g} < {name} < {high:g} (or None: off), got {name}={value!r}")
        return number

    return check


def _choices(options: Sequence[str]) -> Callable[[str, Any], str]:
    return lambda name, value: choice(name, value, options)


def _at_least(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, value: integer(name, value, minimum)


def _option(default: Any, group: str, check: Callable[[str, Any], Any], doc: str) -> Any:
    return field(default=default, metadata={"group": group, "check": check, "doc": " ".join(doc.split())})


@dataclass(frozen=True)
class Options:
    """What an :class:`~lipschitz_lr.AdaptiveLR` computes and how, apart from its wiring (see :func:`options_doc`).

    Every value is checked at construction (a ``ValueError`` names it) and stored as a plain Python
    value, so a ``state_dict`` holding it loads with ``torch.load(weights_only=True)``.
    """

    # --- the loss and its bound
    loss: str = _option(
        "cross_entropy", "loss", _choices(LOSSES),
        "one of ``\"cross_entropy\"`` (default), ``\"binary_cross_entropy\"``, ``\"mse\"``, ``\"mae\"``, "
        "``\"quantile\"``.",
    )  # fmt: skip
    num_classes: int | None = _option(None, "loss", _optional(_at_least(2)), "``k``, required for cross-entropy.")
    weight_decay: float = _option(
        0.0, "loss", finite_nonnegative, '``lambda`` of the L2 term in ``K`` (the paper\'s "weight decay"). Default 0.'
    )
    tau: float | None = _option(None, "loss", _optional(real), 'quantile level, required for ``loss="quantile"``.')
    num_outputs: int = _option(1, "loss", _at_least(1), 'outputs of the network, for ``loss="mae"``.')
    average_outputs: bool = _option(False, "loss", _flag, 'the MAE averages over the outputs (``loss="mae"``).')
    mse_sign: str = _option(
        "plus", "loss", _choices(MSE_SIGNS), '``"plus"`` (a valid bound, default) or ``"minus"`` (the authors\' code).'
    )
    target_norm: float | None = _option(
        None, "loss", _optional(finite_nonnegative),
        "``||y||`` for ``loss=\"mse\"``; default the largest batch target norm the reference pass sees. "
        "Required for MSE with ``statistics=\"hook\"``.",
    )  # fmt: skip
    # --- the variant and its EMAs
    variant: str = _option(
        "sgd", "variant", _choices(tuple(VARIANTS)),
        "``\"sgd\"`` (default), ``\"momentum\"`` (AdaMo), ``\"rmsprop\"`` or ``\"adam\"``: how ``K`` becomes a rate "
        "(:data:`~lipschitz_lr.variants.VARIANTS`).",
    )  # fmt: skip
    initial_lr: float | None = _option(
        None, "variant", _optional(_positive),
        "epoch-0 learning rate. ``None`` (default) computes it from the initial weights. A value is used for "
        "epoch 0 as is; for ``\"momentum\"`` it also seeds ``K1`` (the paper's ``x``, see ``momentum_seed``); "
        "for ``\"rmsprop\"``/``\"adam\"`` the EMAs then start at epoch 1.",
    )  # fmt: skip
    momentum_seed: str = _option(
        "value", "variant", _choices(MOMENTUM_SEEDS),
        "how ``initial_lr = x`` seeds AdaMo's ``K1``: ``\"value\"`` (default): ``K1 = x``, as the authors' code, so "
        "epoch 1 gets ``1/(beta1 x + (1-beta1) K)``; ``\"reciprocal\"``: ``K1 = 1/x``, consistent with ``lr = 1/K1``.",
    )  # fmt: skip
    beta1: float = _option(0.9, "variant", beta, "EMA factor of ``K1`` (momentum, adam). Default 0.9.")
    beta2: float | None = _option(
        None,
        "variant",
        _optional(beta),
        "EMA factor of ``K2``; default 0.9 for rmsprop (Keras ``rho``), 0.999 for adam.",
    )
    eps: float = _option(1e-7, "variant", finite_nonnegative, "added to ``sqrt(K2)``. Default 1e-7 (Keras).")
    bias_correction: bool = _option(
        False, "variant", _flag, "divide the EMAs by ``1 - beta**n`` (rmsprop, adam). Default False, as the authors."
    )
    # --- the rule and its safeguards
    rule: str | None = _option(
        None, "rule", _optional(_choices(RULES)),
        "how ``sgd`` and ``momentum`` turn the bounds into a rate. ``\"paper\"``: ``1/K``, ``K`` the bound of the "
        "loss's gradient (the paper's; it is no descent step: about 46x past the curvature bound on a torchvision "
        "resnet18). ``\"smooth\"``: ``1/L``, ``L = h K_z^2/m + lambda`` the bound of its curvature in the last layer "
        "(ours, :func:`~lipschitz_lr.bounds.smoothness_bound`; for ``momentum`` the EMA of ``L`` is bias-corrected, "
        "so the first rate is ``1/L``, where the paper's unseeded AdaMo starts at ``10/K``). Default ``None``: "
        "``\"smooth\"`` for a smooth loss "
        "(cross-entropy, binary cross-entropy, MSE) with ``sgd``/``momentum``, else ``\"paper\"`` (MAE and the "
        "pinball loss have no curvature; the rmsprop and adam rates are the paper's formulas).",
    )  # fmt: skip
    max_growth: float | None = _option(
        1.5, "rule", _factor(1.0, math.inf),
        "the rate grows by at most this factor from one update to the next, the first from the optimizer's own "
        "learning rate (``SGD(lr=0.1)``: the first rate is at most 0.15, then 0.225, ... up to the rule's), and "
        "only after an update whose training loss (as the reference pass measures it) fell; unless "
        "``initial_lr`` sets it (head inputs that collapse shrink ``K_z`` and multiplied the paper's rate 10-40,000x "
        "in three epochs; a tiny transformer's head gave a first rate of 9 where SGD diverges). Default 1.5; "
        "``None``: unlimited (the paper's).",
    )  # fmt: skip
    backoff: float | None = _option(
        0.5, "rule", _factor(0.0, 1.0),
        "after a non-finite or sharply rising loss (the reference pass measures the training loss; 1.5x the "
        "previous update's) or non-finite statistics, the next rate is the previous one times this, with a "
        "warning naming the cause. Default 0.5; ``None``: keep the previous rate on non-finite statistics and "
        "ignore the loss (the paper's).",
    )  # fmt: skip
    # --- the statistics
    statistics: str = _option(
        "reference", "statistics", _choices(STATISTICS_SOURCES),
        "``\"reference\"`` (default: an extra in-order eval pass over the loader, the paper's) or ``\"hook\"`` (the "
        "training forward passes, no extra pass; not reference-equivalent).",
    )  # fmt: skip
    batchnorm: str = _option(
        "batch", "statistics", _choices(BATCHNORM_MODES),
        "how BatchNorm layers normalise in the reference pass (and hook mode's epoch 0). ``\"batch\"`` (default): "
        "each batch by its own statistics, running statistics untouched; safe from the first epoch. "
        "``\"running\"``: their running statistics (eval mode), the paper's; at initialisation these are 0 and 1, "
        "and in many modern networks the head's inputs then nearly vanish (torchvision mobilenet_v3_small: K_z "
        "1e-7, a first rate of 1.7e8, against 5.5 and 3.2 with ``\"batch\"``; ``benchmarks/batchnorm_modes.py``).",
    )  # fmt: skip
    batch_size: int | None = _option(
        None, "statistics", _optional(_at_least(1)),
        "``m``; default ``loader.batch_size``, else the largest batch seen. A head applied per token counts every "
        "(batch, token) row unless ``batch_size`` is given.",
    )  # fmt: skip
    head_rows: str = _option(
        "all", "statistics", _choices(HEAD_ROWS),
        "which rows of a head applied per token (batch x tokens x features) or per pixel (a 1x1 convolution) enter "
        "the loss: ``\"all\"`` (default: a tagger, a segmentation head; ``m`` counts every row), or only each "
        "example's ``\"first\"`` or ``\"last\"`` (a classifier run on every token whose loss pools one, as Hugging "
        "Face's GPT-2 classifier does on unpadded batches; ``m`` counts examples).",
    )  # fmt: skip
    statistics_batches: int | None = _option(
        None, "statistics", _optional(_at_least(1)),
        "the reference pass reads only the loader's first ``N`` batches (cheaper; beyond the paper, whose ``K_z`` "
        "is over every batch, so the rate is at least as large). Default ``None``: every batch.",
    )  # fmt: skip
    # --- clamps and safety
    min_lr: float | tuple[float, ...] | None = _option(
        None, "safety", _clamp,
        "clamp. One value clamps the group with the largest initial rate and the others in proportion, so the "
        "groups keep their ratios; a list gives one per group. Groups added later take their ratio, unclamped. "
        "The clamp of each group: ``resolved.min_lr``.",
    )  # fmt: skip
    max_lr: float | tuple[float, ...] | None = _option(None, "safety", _clamp, "clamp, as ``min_lr``.")
    warmup_steps: int = _option(
        0, "safety", _at_least(0),
        "a linear warm-up over the first ``N`` optimizer steps: step ``t`` uses the computed rate times "
        "``min(1, (t + 1) / N)``, towards whatever each epoch computes. Default 0 (none, the paper's). AdaptiveLR "
        "cannot be composed with ``SequentialLR``/``ChainedScheduler``: it refuses a rate it did not write.",
    )  # fmt: skip
    warmup_epochs: int = _option(
        0, "safety", _at_least(0),
        "the same over whole epochs, ``warmup_epochs * len(loader)`` optimizer steps (one batch per step; with "
        "gradient accumulation give ``warmup_steps``). The steps it comes to: ``resolved.warmup_steps``.",
    )  # fmt: skip
    keras_decay: bool = _option(
        False, "safety", _flag,
        "also divide the rate every optimizer step by ``1 + lambda t``, ``t`` the global iteration, as the "
        "authors' Keras optimizers did (their ``decay``). Default False (clean); True for faithful reproduction.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))
        if self.beta2 is None:
            object.__setattr__(self, "beta2", VARIANTS[self.variant].default_beta2)
        if self.loss == "cross_entropy" and self.num_classes is None:
            raise ValueError("loss='cross_entropy' requires num_classes, got num_classes=None")
        if self.bias_correction and not VARIANTS[self.variant].second_moment:
            raise ValueError(f"bias_correction applies to variant 'rmsprop' or 'adam', got variant={self.variant!r}")
        if self.warmup_steps and self.warmup_epochs:
            raise ValueError(
                f"give warmup_steps or warmup_epochs, not both, got warmup_steps={self.warmup_steps}, "
                f"warmup_epochs={self.warmup_epochs}"
            )
        if self.rule == "smooth" and CURVATURES[self.loss] is None:
            raise ValueError(
                f"rule='smooth' needs a smooth loss, got loss={self.loss!r} (a kink at 0): use rule='paper'"
            )
        if self.rule == "smooth" and self.variant not in SMOOTH_VARIANTS:
            raise ValueError(
                f"rule='smooth' applies to variant 'sgd' or 'momentum' (a rate 1/L), got variant={self.variant!r}, "
                "whose rate is the paper's formula: leave rule unset"
            )
        if self.loss == "mse" and self.statistics == "hook" and self.target_norm is None:
            raise ValueError("loss='mse' with statistics='hook' requires target_norm (forward hooks see no targets)")
        if self.min_lr is not None and self.max_lr is not None:
            lows, highs = (v if isinstance(v, tuple) else (v,) for v in (self.min_lr, self.max_lr))
            if len(lows) == len(highs):
                for i, (low, high) in enumerate(zip(lows, highs, strict=True)):
                    if low > high:
                        raise ValueError(
                            f"min_lr must not exceed max_lr, got min_lr={low!r} > max_lr={high!r} for group {i}"
                        )
        # the loss's arguments (tau for quantile, ...), checked now rather than at the first step
        loss_coefficient(self.loss, self.batch_size or 1, **self.loss_arguments)

    @property
    def loss_arguments(self) -> dict[str, Any]:
        """The options a loss's bound takes besides its statistics (:func:`~lipschitz_lr.bounds.loss_coefficient`):
        those of the loss group but ``loss``, ``weight_decay`` (the weight term) and ``target_norm`` (a statistic
        where not given), forwarded from here alone."""
        return {name: getattr(self, name) for name in LOSS_ARGUMENTS}

    @property
    def resolved_rule(self) -> str:
        """The rule in use: ``rule``, or its default for this loss and variant (see ``rule``)."""
        if self.rule is not None:
            return self.rule
        return "smooth" if CURVATURES[self.loss] is not None and self.variant in SMOOTH_VARIANTS else "paper"

    def replace(self, **changes: Any) -> Options:
        """A copy with ``changes``, checked again (an unknown name: :func:`known`'s ``TypeError``)."""
        return dataclasses.replace(self, **known(changes))

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values (a per-group clamp as a list), as ``state_dict`` saves them."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.__dict__.items()}


#: See :attr:`Options.loss_arguments`.
LOSS_ARGUMENTS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Options)
    if f.metadata["group"] == "loss" and f.name not in ("loss", "weight_decay", "target_norm")
)


def names() -> tuple[str, ...]:
    """The option names, in the order of :class:`Options`."""
    return tuple(f.name for f in dataclasses.fields(Options))


def options_doc(indent: str = "    ") -> str:
    """The options' documentation, grouped by concern: each concern's title two ``indent`` in, its options
    three (the ``Options`` section of ``AdaptiveLR``'s docstring)."""
    lines = []
    for group, title in GROUPS.items():
        lines.append(f"{indent * 2}{title}:")
        for f in dataclasses.fields(Options):
            if f.metadata["group"] == group:
                lines.append(f"{indent * 3}{f.name}: {f.metadata['doc']}")
    return "\n".join(lines)


def check_values(values: dict[str, Any]) -> dict[str, Any]:
    """Each of ``values`` checked by its option's own check, as :class:`Options` checks it (a ``ValueError`` names
    it; an unknown name: :func:`known`'s ``TypeError``); returns them as plain values. What depends on other options
    (a variant's ``bias_correction``, a loss's ``tau``) is checked when the :class:`Options` is built.

    >>> check_values({"warmup_epochs": 2.0, "batchnorm": "running"})
    {'warmup_epochs': 2, 'batchnorm': 'running'}
    """
    checks = {f.name: f.metadata["check"] for f in dataclasses.fields(Options)}
    return {name: checks[name](name, value) for name, value in known(values).items()}


def known(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` if each names an option; else a ``TypeError`` listing the options."""
    unknown = sorted(set(values) - set(names()))
    if unknown:
        raise TypeError(f"AdaptiveLR got unknown option(s) {unknown}; the options are {', '.join(names())}")
    return values


def expose_options(cls: type) -> None:
    """Make each option of :class:`Options` a read-only attribute of ``cls`` (read from its ``options``), a
    keyword of its ``__init__``'s signature (for ``help()`` and editors), and fill the ``{options}`` of its
    docstring with :func:`options_doc`: the one list, written once."""
    for f in dataclasses.fields(Options):
        getter = operator.attrgetter(f"options.{f.name}")
        setattr(cls, f.name, property(getter, doc=f"The option ``{f.name}`` (read-only): {f.metadata['doc']}"))
    cls.__doc__ = (cls.__doc__ or "").replace("{options}", options_doc("    "))
    init = inspect.signature(cls.__init__)
    cls.__init__.__signature__ = init.replace(  # type: ignore[attr-defined]
        parameters=[
            *(p for p in init.parameters.values() if p.kind != p.VAR_KEYWORD),
            *(
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                for f in dataclasses.fields(Options)
            ),
        ]
    )


def _markdown(text: str) -> str:
    """A docstring's reST as Markdown: ````x```` as ```x```, a cross-reference role as its target's name in code
    (``:data:`~lipschitz_lr.variants.VARIANTS``` as ```VARIANTS```, without ``~`` the whole path).

    >>> _markdown("``x`` (:data:`~lipschitz_lr.variants.VARIANTS`, :func:`a.b`)")
    '`x` (`VARIANTS`, `a.b`)'
    """
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"`\1`", text)
    text = re.sub(r":\w+:`([\w.]+)`", r"`\1`", text)
    return text.replace("``", "`")


def options_markdown() -> str:
    """``docs/options.md``: the options grouped by concern, each with its default (written by ``make docs``)."""
    lines = [
        "# AdaptiveLR's options",
        "",
        "Generated from `lipschitz_lr.options.Options` by `make docs` (a test checks that this file is current).",
        "Pass them to `AdaptiveLR(...)` as keywords or as `options=Options(...)`; each is also a read-only",
        "attribute of the scheduler and a key of its `state_dict()`.",
    ]
    for group, title in GROUPS.items():
        lines += ["", f"## {title}", "", "| option | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(Options):
            if f.metadata["group"] == group:
                doc = _markdown(f.metadata["doc"]).replace("|", "\\|")
                lines.append(f"| `{f.name}` | `{f.default!r}` | {doc} |")
    return "\n".join(lines) + "\n"
