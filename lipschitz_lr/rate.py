"""One update's rate from one pass's statistics: the bounds, then the variant's rule, as pure functions.

:func:`bounds` turns the statistics of the head's inputs into ``K_*`` (the paper's Lipschitz bound of the loss),
``S_*`` (its second-moment bound) and ``L`` (ours: the curvature bound, for ``rule="smooth"``); :func:`rule_rate`
advances the variant's EMAs (:class:`Emas`, the only running state the rule has) and returns the rate. The
safeguards on top (growth limit, back-off) are :mod:`lipschitz_lr.safeguards`; which groups get what,
:class:`~lipschitz_lr.AdaptiveLR`.

References:
    Yedida, Saha, Prashanth. "LipschitzLR: Using theoretically computed adaptive learning rates
    for fast convergence." Applied Intelligence (2021), arXiv:1902.07399 (Sections 3-4).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .bounds import loss_coefficient, second_moment_bound, smoothness_bound, weight_decay_bound
from .options import Options
from .statistics import LipschitzStatistics
from .variants import VARIANTS

__all__ = ["Emas", "bounds", "rule_rate"]


class Emas(NamedTuple):
    """The variant's running averages: ``K1`` (momentum, adam), ``K2`` (rmsprop, adam) and how many updates they
    have taken (for bias correction). They start at 0, as in the authors' code."""

    k1: float = 0.0
    k2: float = 0.0
    num_updates: int = 0


def bounds(options: Options, stats: LipschitzStatistics, m: float) -> tuple[float, float, float]:
    """``(K_*, S_*, L)`` of one pass over ``m`` rows per batch (``L`` NaN unless the rule is ``"smooth"``); NaN when a
    statistic is not finite or ``K_z`` is 0 (with every head input zero, dead ReLUs say, only the weight term would
    remain and ``1/(lambda K_w)`` is no learning rate of the method).

    Example:
        >>> stats = LipschitzStatistics(2.0, 1.0, 0.0, 0.0, 0.0, batch_rows=128, num_batches=1)
        >>> k, s, curvature = bounds(Options(num_classes=10, rule="paper"), stats, 128)
        >>> k == 9 / 1280 * 2.0
        True
    """
    if not all(math.isfinite(v) for v in (stats.k_z, stats.s, stats.output_norm, stats.max_weight_norm)):
        return math.nan, math.nan, math.nan
    if stats.k_z == 0:
        return math.nan, math.nan, math.nan
    target_norm = options.target_norm if options.target_norm is not None else stats.target_norm
    c = loss_coefficient(
        options.loss, m, **options.loss_arguments, output_bound=stats.output_norm, target_norm=target_norm
    )
    k = c * stats.k_z + weight_decay_bound(options.weight_decay, stats.max_weight_norm)
    s = second_moment_bound(c, stats.k_z, stats.s, options.weight_decay, stats.max_weight_norm)
    smooth = options.resolved_rule == "smooth"
    curvature = smoothness_bound(options.loss, stats.k_z, m, options.weight_decay) if smooth else math.nan
    return k, s, curvature


def rule_rate(options: Options, emas: Emas, epoch: int, bound: float, s: float, k_z: float) -> tuple[float, str, Emas]:
    """The variant's rate for epoch ``epoch`` from its bound (``K_*``, or ``L`` under ``rule="smooth"``), ``S_*``
    and ``K_z``; returns ``(rate, note, emas)``: NaN for non-finite bounds (the EMAs then stay), ``note``
    ``"initial_lr"`` where ``initial_lr`` sets epoch 0 (and, for momentum, seeds ``K1``).

    Example:
        >>> rule_rate(Options(num_classes=10, rule="paper"), Emas(), 1, 4.0, 1.0, 2.0)[0]
        0.25
        >>> adamo = Options(num_classes=10, variant="momentum", rule="paper")
        >>> rate, _, emas = rule_rate(adamo, Emas(), 1, 4.0, 1.0, 2.0)
        >>> round(emas.k1, 6), round(rate, 6)  # K1 = 0.1 * 4 from 0: the paper's unseeded AdaMo starts at 10/K
        (0.4, 2.5)
    """
    if epoch == 0 and options.initial_lr is not None:
        if options.variant == "momentum":
            x = options.initial_lr
            emas = emas._replace(k1=x if options.momentum_seed == "value" else 1.0 / x)
        return options.initial_lr, "initial_lr", emas
    if not (math.isfinite(bound) and math.isfinite(s) and math.isfinite(k_z)):
        return math.nan, "", emas
    variant = VARIANTS[options.variant]
    k1, k2 = emas.k1, emas.k2
    if variant.uses_emas:
        b1, b2, n = options.beta1, options.beta2, emas.num_updates + 1
        emas = Emas(b1 * emas.k1 + (1.0 - b1) * bound, b2 * emas.k2 + (1.0 - b2) * s, n)
        k1, k2 = emas.k1, emas.k2
        if options.bias_correction:
            k1, k2 = k1 / (1.0 - b1**n), k2 / (1.0 - b2**n)
        elif options.resolved_rule == "smooth":  # ours: AdaMo's EMA of L from 0, bias-corrected, so the first
            k1 /= 1.0 - b1**n  # rate is 1/L (the paper's is 10/K)
    return variant.learning_rate(bound, k1, k2, k_z, options.eps), "", emas
