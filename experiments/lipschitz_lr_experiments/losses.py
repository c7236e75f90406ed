"""The training losses of the experiments, by name: the authors' Keras cross-entropy and torch's.

``keras_cross_entropy`` is what every one of the authors' scripts trained with: Keras 2.2's
``categorical_crossentropy`` on softmax outputs, which clips the probabilities to
``[eps, 1 - eps]`` (``eps = 1e-7``, Keras' ``epsilon()``) before the log (Keras 2.2.4,
``keras/backend/tensorflow_backend.py``, ``categorical_crossentropy``: ``tf.clip_by_value(output,
_epsilon, 1. - _epsilon)``). An example whose true class has ``p < 1e-7`` (or ``p > 1 - 1e-7``)
contributes a constant and no gradient. At the learning rates LipschitzLR picks on MNIST (2-3),
this cut is what keeps reference SGD from diverging (docs/fidelity.md, "Reference mode and clean mode").

``cross_entropy`` is ``torch.nn.functional.cross_entropy`` (no cut): the clean choice.

Both take logits ``(batch, classes)`` and integer targets and return the batch mean; the softmax
and the log are computed in float32 whatever the autocast precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from lipschitz_lr.losses import KERAS_EPSILON, keras_cross_entropy

from .registry import Registry

__all__ = ["KERAS_EPSILON", "LOSSES", "LossSpec", "keras_cross_entropy"]

LossFn = Callable[..., Tensor]


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
