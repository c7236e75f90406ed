"""The authors' training loss, for a faithful reproduction in your own loop.

``keras_cross_entropy`` is Keras 2.2's ``categorical_crossentropy`` on softmax outputs, which clips
the probabilities to ``[eps, 1 - eps]`` (``eps = 1e-7``) before the log. An example whose true class
has ``p < 1e-7`` contributes a constant and no gradient: at the rates LipschitzLR picks on MNIST
(2-3) this cut is what keeps the paper's SGD run from diverging, where torch's unclipped
``cross_entropy`` gives NaN (docs/fidelity.md, "Reference mode and clean mode").

References:
    Keras 2.2.4, ``keras/backend/tensorflow_backend.py``, ``categorical_crossentropy``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KERAS_EPSILON", "keras_cross_entropy"]

#: Keras' ``backend.epsilon()`` default.
KERAS_EPSILON = 1e-7


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
