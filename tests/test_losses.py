"""lipschitz_lr.losses: Keras 2.2's clipped cross-entropy, against its formula written out."""

import math

import pytest
import torch

from lipschitz_lr.losses import KERAS_EPSILON, keras_cross_entropy


def test_keras_cross_entropy_is_minus_the_log_of_the_clipped_true_class_probability():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 50.0, -50.0], [30.0, -30.0, 0.0]], requires_grad=True)
    targets = torch.tensor([0, 1, 1])
    losses = keras_cross_entropy(logits, targets, reduction="none")
    expected = []
    for row, y in zip(logits.detach().tolist(), targets.tolist(), strict=True):
        p = math.exp(row[y]) / sum(math.exp(v) for v in row)
        expected.append(-math.log(min(max(p, KERAS_EPSILON), 1 - KERAS_EPSILON)))
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert float(keras_cross_entropy(logits.detach(), targets, reduction="sum")) == pytest.approx(
        sum(expected), rel=1e-5
    )
    keras_cross_entropy(logits, targets).backward()
    # the clipped examples (p_y below eps, or above 1 - eps) contribute no gradient
    assert torch.count_nonzero(logits.grad[1]) == 0 and torch.count_nonzero(logits.grad[2]) == 0
    assert torch.count_nonzero(logits.grad[0]) == 3


def test_an_unknown_reduction_is_refused_naming_it():
    with pytest.raises(ValueError, match="reduction='max'"):
        keras_cross_entropy(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), reduction="max")
