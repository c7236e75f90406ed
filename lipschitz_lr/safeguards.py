"""Safeguards on the rate AdaptiveLR writes, beyond the paper: each a pure function of this update's rate, the
previous one and the losses the statistics pass measured.

* :func:`limited_growth`: the rate grows by at most ``max_growth`` between updates (head inputs that collapse,
  dead ReLUs or BatchNorm, shrink ``K_z`` and multiplied the paper's rate 10-40,000x in three epochs), and only
  after an update whose pass loss fell (:func:`loss_fell`);
* :func:`backed_off`: after a non-finite or sharply rising loss (or non-finite statistics) the next rate is the
  previous one times ``backoff`` (the paper keeps the rate that diverged);
* :func:`is_jump`: a rate 10x above or below the previous one, which is warned about;
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

__all__ = ["JUMP", "RISE", "backed_off", "is_jump", "limited_growth", "loss_fell", "loss_rose", "pass_loss"]

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
