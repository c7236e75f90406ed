"""The per-step factors on an epoch's learning rate: the inverse-time decay ``1 / (1 + decay t)`` of the
authors' Keras optimizers (their ``decay`` argument) and a linear warm-up. One implementation, used by
:class:`~lipschitz_lr.AdaptiveLR` (``keras_decay``, ``warmup_steps``) and by the harness's fixed-rate
baselines (``torch.optim.lr_scheduler.LambdaLR(optimizer, InverseTimeDecay(decay))``).

Example:
    >>> InverseTimeDecay(1e-3)(1000)
    0.5
    >>> [linear_warmup(t, 4) for t in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
"""

from __future__ import annotations

__all__ = ["InverseTimeDecay", "linear_warmup"]


class InverseTimeDecay:
    """``1 / (1 + decay * t)`` at step ``t``: a picklable callable (``LambdaLR`` saves a callable object's state).

    References:
        Keras 2 ``optimizers.SGD(decay=...)``: ``lr * 1 / (1 + decay * iterations)``.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, step: int) -> float:
        return 1.0 / (1.0 + self.decay * step)


def linear_warmup(step: int, steps: int) -> float:
    """``min(1, (step + 1) / steps)``: the factor at 0-based ``step`` of a warm-up over ``steps`` steps (1: none)."""
    return min(1.0, (step + 1) / steps) if steps else 1.0
