"""The training losses of the experiments, by name: the authors' Keras cross-entropy and torch's.

``keras_cross_entropy`` is what every one of the authors' scripts trained with: Keras 2.2's
``categorical_crossentropy`` on softmax outputs, which clips the probabilities to
``[eps, 1 - eps]`` (``eps = 1e-7``, Keras' ``epsilon()``) before the log (Keras 2.2.4,
``keras/backend/tensorflow_backend.py``, ``categorical_crossentropy``: ``tf.clip_by_value(output,
_epsilon, 1. - _epsilon)``). An example whose true class has ``p < 1e-7`` (or ``p > 1 - 1e-7``)
contributes a constant and no gradient. At the learning rates LipschitzLR picks on MNIST (2-3),
this cut is what keeps reference SGD from diverging (see the README).

``cross_entropy`` is ``torch.nn.functional.cross_entropy`` (no cut): the clean choice.

Both take logits ``(batch, classes)`` and integer targets and return the batch mean; the softmax
and the log are computed in float32 whatever the autocast precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry

__all__ = ["KERAS_EPSILON", "LOSSES", "LossSpec", "keras_cross_entropy"]

#: Keras' ``backend.epsilon()`` default.
KERAS_EPSILON = 1e-7

LossFn = Callable[..., Tensor]


def keras_cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean", eps: float = KERAS_EPSILON) -> Tensor:
    """Cross-entropy as Keras 2.2 computes it on softmax outputs: ``-log(clip(p_y, eps, 1 - eps))``.

    Only the true class's probability enters (the one-hot target zeroes the other terms, and
    their gradients), so this gathers ``p_y`` instead of summing over classes.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0], [40.0, -40.0]])
        >>> keras_cross_entropy(logits, torch.tensor([0, 1]), reduction="none")
        tensor([ 0.6931, 16.1181])
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"requires reduction 'mean', 'sum' or 'none', got {reduction=}")
    p_y = torch.softmax(logits.float(), dim=1).gather(1, targets.long().unsqueeze(1)).squeeze(1)
    losses = -torch.log(p_y.clamp(eps, 1.0 - eps))
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _torch_cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    return F.cross_entropy(logits.float(), targets, reduction=reduction)


@dataclass(frozen=True)
class LossSpec:
    """A training loss of the registry.

    Attributes:
        fn: ``fn(logits, targets, reduction="mean")``.
        bound: the name of its Lipschitz bound in :data:`lipschitz_lr.bounds.LOSS_BOUNDS`, which
            LipschitzLR is given as ``AdaptiveLR(loss=...)``.
    """

    fn: LossFn
    bound: str


#: The training-loss registry: a config's ``loss`` names one (test: ``tests/experiments/test_losses.py``).
#: Both cross-entropies have the softmax cross-entropy bound (the Keras cut only removes gradient).
LOSSES: Registry[LossSpec] = Registry(
    "loss",
    {
        "keras_cross_entropy": LossSpec(keras_cross_entropy, bound="cross_entropy"),
        "cross_entropy": LossSpec(_torch_cross_entropy, bound="cross_entropy"),
    },
)
