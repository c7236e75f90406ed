"""The paper's optimiser variants: how the epoch's bounds become a learning rate, one entry each.

Every variant sees the epoch's ``K`` (the loss bound plus the weight term), the EMAs ``K1`` (of
``K``) and ``K2`` (of the second-moment bound ``S``) after this epoch's update, and ``K_z``:

.. math::
    \\text{sgd: } 1/K \\qquad \\text{momentum: } 1/K_1 \\qquad
    \\text{rmsprop: } (\\sqrt{K_2} + \\epsilon)/K_z \\qquad \\text{adam: } (\\sqrt{K_2} + \\epsilon)/K_1

:data:`VARIANTS` is the one place a variant is registered: ``AdaptiveLR(variant=...)`` accepts its
names, the experiments' optimiser registry pairs each with its torch optimiser, and a new variant
needs a test in ``tests/test_rate.py`` against its formula.

References:
    Yedida, Saha, Prashanth. "LipschitzLR" (arXiv:1902.07399), the algorithms for SGD, AdaMo,
    RMSprop and Adam; the authors' code for the EMA seeding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import Optimizer

__all__ = ["VARIANTS", "Variant", "expected_variant"]


def _over(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.inf


def _sgd_momentum(optimizer: Optimizer) -> bool | None:
    """Whether an SGD optimizer uses momentum (None: not SGD)."""
    if not isinstance(optimizer, torch.optim.SGD):
        return None
    return any(float(g.get("momentum", 0.0) or 0.0) > 0 for g in optimizer.param_groups)


@dataclass(frozen=True)
class Variant:
    """One variant of the method.

    Attributes:
        learning_rate: ``(k, k1, k2, k_z, eps) -> lr`` with the EMAs already updated.
        uses_emas: whether ``K1``/``K2`` advance every epoch (all but plain SGD).
        second_moment: whether the rate uses ``K2`` (then ``bias_correction`` may apply).
        default_beta2: the EMA factor of ``K2`` when none is given (Keras' ``rho`` or ``beta_2``).
        suits: whether a torch optimizer is the one this variant's rate assumes (a mismatch warns).
    """

    learning_rate: Callable[[float, float, float, float, float], float]
    uses_emas: bool
    second_moment: bool
    default_beta2: float
    suits: Callable[[Optimizer], bool]


VARIANTS: dict[str, Variant] = {
    "sgd": Variant(
        lambda k, k1, k2, k_z, eps: _over(1.0, k),
        uses_emas=False,
        second_moment=False,
        default_beta2=0.999,
        suits=lambda opt: _sgd_momentum(opt) is False,
    ),
    "momentum": Variant(
        lambda k, k1, k2, k_z, eps: _over(1.0, k1),
        uses_emas=True,
        second_moment=False,
        default_beta2=0.999,
        suits=lambda opt: _sgd_momentum(opt) is True,
    ),
    "rmsprop": Variant(
        lambda k, k1, k2, k_z, eps: _over(math.sqrt(k2) + eps, k_z),
        uses_emas=True,
        second_moment=True,
        default_beta2=0.9,
        suits=lambda opt: isinstance(opt, torch.optim.RMSprop),
    ),
    "adam": Variant(
        lambda k, k1, k2, k_z, eps: _over(math.sqrt(k2) + eps, k1),
        uses_emas=True,
        second_moment=True,
        default_beta2=0.999,
        suits=lambda opt: isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)),
    ),
}


def expected_variant(optimizer: Optimizer) -> str | None:
    """The variant whose rate assumes ``optimizer`` (None for an optimizer no variant is for)."""
    return next((name for name, variant in VARIANTS.items() if variant.suits(optimizer)), None)
