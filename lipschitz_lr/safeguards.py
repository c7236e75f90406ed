"""Safeguards on the rate AdaptiveLR writes, beyond the paper: each a pure function of this update's rate, the
previous one and the losses the statistics pass measured.

* :func:`limited_growth`: the rate grows by at most ``max_growth`` between updates (head inputs that collapse,
  dead ReLUs or BatchNorm, shrink ``K_z`` and multiplied the paper's rate 10-40,000x in three epochs), and only
  after an update whose pass loss fell (:func:`loss_fell`);
* :func:`backed_off`: after a non-finite or sharply rising loss (or non-finite statistics) the next rate is the
  previous one times ``backoff`` (the paper keeps the rate that diverged);
* :func:`is_jump`: a rate 10x above or below the previous one, which is warned about (:func:`unusual_rate`);
* :func:`pass_loss`: the training loss the reference pass measures on the way (the model's outputs against the
  batch's targets), which :func:`loss_rose` compares from one update to the next.

The paper has none of these: ``AdaptiveLR(rule="paper", max_growth=None, backoff=None)`` turns them off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "JUMP",
    "RISE",
    "backed_off",
    "divergence",
    "is_jump",
    "limited_growth",
    "loss_fell",
    "loss_rose",
    "pass_loss",
    "safeguarded",
    "unusual_rate",
]

#: A rate this many times above or below the previous one is warned about.
JUMP = 10.0
#: A pass loss this many times the previous one counts as sharply rising.
RISE = 1.5


def limited_growth(rate: float, previous: float | None, max_growth: float | None) -> float:
    """``rate``, at most ``max_growth`` times ``previous`` (no limit without either).

    >>> limited_growth(8.0, 1.0, 2.0), limited_growth(0.5, 1.0, 2.0), limited_growth(8.0, None, 2.0)
    (2.0, 0.5, 8.0)
    """
    if max_growth is None or previous is None or not math.isfinite(previous) or previous <= 0:
        return rate
    return min(rate, max_growth * previous)


def backed_off(previous: float, backoff: float) -> float:
    """The rate after a divergence: the previous one times ``backoff``.

    >>> backed_off(0.2, 0.5)
    0.1
    """
    return previous * backoff


def is_jump(rate: float, previous: float | None, factor: float = JUMP) -> bool:
    """Whether ``rate`` is ``factor`` or more times above or below ``previous``.

    >>> is_jump(3.0, 0.2), is_jump(0.02, 0.2), is_jump(0.3, 0.2), is_jump(0.3, None)
    (True, True, False, False)
    """
    if previous is None or not (math.isfinite(previous) and previous > 0 and math.isfinite(rate) and rate > 0):
        return False
    return rate >= factor * previous or rate * factor <= previous


def loss_rose(loss: float, previous: float | None, factor: float = RISE) -> bool:
    """Whether the pass loss is infinite (not finite, as :class:`~lipschitz_lr.statistics.LipschitzStatistics`
    records it), or ``factor`` or more times the previous finite one. NaN is a loss not measured: no.

    >>> loss_rose(3.5e35, 2.3), loss_rose(float("inf"), 2.3), loss_rose(2.4, 2.3), loss_rose(float("nan"), 2.3)
    (True, True, False, False)
    """
    if math.isnan(loss):
        return False
    if math.isinf(loss):
        return True
    return previous is not None and math.isfinite(previous) and loss >= factor * previous


def loss_fell(loss: float, previous: float) -> bool:
    """Whether the pass loss fell since the previous update (true where either was not measured: NaN).

    >>> loss_fell(0.66, 0.69), loss_fell(0.70, 0.69), loss_fell(float("nan"), 0.69)
    (True, False, True)
    """
    if math.isnan(loss) or math.isnan(previous):
        return True
    return loss < previous


def divergence(bound: float, loss: float, previous_loss: float, k_z: float = math.nan) -> str:
    """Why an update should back off, in words: non-finite statistics (``bound``, NaN for those), or a pass loss
    that is not finite or rose sharply (:func:`loss_rose`) since the last update's (``previous_loss``, NaN for none);
    ``""`` for none. ``k_z`` is named with non-finite statistics.

    >>> divergence(2.0, 3.1, 2.0), divergence(2.0, 2.1, 2.0)
    ('the training loss rose from 2 to 3.1', '')
    """
    if not math.isfinite(bound):
        return f"the statistics are not finite or zero (K_z={k_z!r})"
    if not loss_rose(loss, previous_loss if math.isfinite(previous_loss) else None):
        return ""
    if not math.isfinite(loss):
        return "the training loss is not finite"
    return f"the training loss rose from {previous_loss:.4g} to {loss:.4g}"


def safeguarded(
    rate: float,
    note: str,
    last: float | None,
    anchor: float | None,
    cause: str,
    loss: float,
    previous_loss: float,
    options: Any,
) -> tuple[float, str, str]:
    """The rule's ``rate`` after the safeguards of ``options`` (``backoff``, ``max_growth``): ``(rate, note,
    warning)``. With a ``cause`` (:func:`divergence`) and the ``last`` update's rate, ``backoff`` times ``last``
    and a warning naming the cause; else a finite rate grows from ``last`` (none: from ``anchor``; neither: no
    limit) by at most ``max_growth``, and not at all after an update whose pass loss (``loss``, against
    ``previous_loss``) did not fall.

    >>> from lipschitz_lr.options import Options
    >>> safeguarded(8.0, "", 1.0, None, "", 0.5, 1.0, Options(num_classes=2))[:2]  # grows 1.5x at most
    (1.5, 'limited')
    >>> safeguarded(8.0, "", 1.0, None, "the training loss is not finite", math.inf, 1.0, Options(num_classes=2))[:2]
    (0.5, 'backed off')
    """
    if cause and options.backoff is not None and last is not None:
        backed = backed_off(last, options.backoff)
        warning = (
            f"{cause}; the learning rate backs off from {last:.4g} to {backed:.4g} (backoff={options.backoff:g}). "
            "If this repeats, lower max_lr or use a warm-up (warmup_epochs)"
        )
        return backed, "backed off", warning
    if math.isfinite(rate) and rate > 0:
        stalled = not loss_fell(loss, previous_loss)  # growth is earned (NaN, a loss not measured: no stall)
        growth = 1.0 if stalled and options.max_growth else options.max_growth
        limited = limited_growth(rate, last if last is not None else anchor, growth)
        if limited < rate:
            return limited, note or "limited", ""
    return rate, note, ""


def _cross_entropy(output: Tensor, targets: Tensor) -> Tensor:
    if targets.is_floating_point():  # probabilities (or one-hot), one row per row of logits
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1, output.shape[-1]))
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


def _pinball(output: Tensor, targets: Tensor, tau: float) -> Tensor:
    error = targets.reshape(output.shape) - output
    return torch.maximum(tau * error, (tau - 1) * error).mean()


#: Each loss as the pass computes it from the model's output and the batch's targets.
_LOSSES: dict[str, Callable[..., Tensor]] = {
    "cross_entropy": lambda out, y, **_: _cross_entropy(out, y),
    "binary_cross_entropy": lambda out, y, **_: F.binary_cross_entropy_with_logits(out, y.reshape(out.shape).to(out)),
    "mse": lambda out, y, **_: 0.5 * F.mse_loss(out, y.reshape(out.shape).to(out)),
    "mae": lambda out, y, **_: F.l1_loss(out, y.reshape(out.shape).to(out)),
    "quantile": lambda out, y, tau=0.5, **_: _pinball(out, y.to(out), tau),
}


def pass_loss(loss: str, output: Any, targets: Any, **arguments: Any) -> Tensor | None:
    """The batch's mean ``loss`` (a float64 scalar on the output's device: no synchronisation) from the model's
    ``output`` (itself, its ``logits``, else its first tensor) and ``targets``; None where the two do not fit
    that loss (no targets, a model whose output is not the logits the targets index, ...).

    >>> round(float(pass_loss("cross_entropy", torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))), 4)
    1.0986
    >>> pass_loss("cross_entropy", torch.zeros(4, 3), None) is None
    True
    """
    from .batches import first_tensor
    from .models import output_tensor

    out, y = output_tensor(output), first_tensor(targets)
    if out is None or y is None or out.dim() == 0:
        return None
    try:
        return _LOSSES[loss](out.detach().double(), y.detach().to(out.device), **arguments)
    except (RuntimeError, ValueError, IndexError):  # shapes or dtypes that do not fit: no loss to watch
        return None


def unusual_rate(
    record: Any, last: float | None, sane: tuple[float, float], head: str, *, running_batchnorm: bool = False
) -> str | None:
    """The warning for an update's rate (``record``, an :class:`~lipschitz_lr.records.EpochRecord`) outside
    ``sane`` or 10x above or below ``last``, naming the statistics behind it; None for a usual one, or one the
    scheduler guarded or backed off (already warned about). ``running_batchnorm``: the pass normalised by
    BatchNorm's running statistics, the likely cause at initialisation."""
    if record.note in ("guarded", "backed off"):
        return None
    hint = (
        " BatchNorm layers normalised by their running statistics (batchnorm='running'), which at "
        "initialisation are 0 and 1: batchnorm='batch' (the default) uses each batch's own."
        if running_batchnorm
        else ""
    )
    low, high = sane
    if not low <= record.lr <= high:
        return (
            f"AdaptiveLR epoch {record.epoch}: the learning rate {record.lr:.3g} is outside [{low:g}, {high:g}] "
            f"(K_z={record.k_z:.3g}, K={record.k:.3g}, head {head}): degenerate statistics?{hint} initial_lr, min_lr "
            "and max_lr bound the rate"
        )
    if is_jump(record.method_lr, last):
        assert last is not None
        return (
            f"AdaptiveLR epoch {record.epoch}: the learning rate moved from {last:.3g} to {record.method_lr:.3g}, "
            f"10x or more in one update (K_z={record.k_z:.3g}: the head's inputs "
            f"{'shrank' if record.method_lr > last else 'grew'}).{hint} max_growth limits the growth; min_lr and "
            "max_lr bound the rate"
        )
    return None
