import math

import pytest
import torch
import torch.nn.functional as F

from lipschitz_lr.bounds import LOSS_BOUNDS
from lipschitz_lr_experiments.losses import KERAS_EPSILON, LOSSES, keras_cross_entropy


def test_keras_cross_entropy_equals_torch_where_nothing_is_clipped():
    torch.manual_seed(0)
    logits, targets = torch.randn(64, 10), torch.randint(0, 10, (64,))
    expected = float(F.cross_entropy(logits, targets))
    assert float(keras_cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    keras_cross_entropy(a, targets).backward()
    F.cross_entropy(b, targets).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_keras_cross_entropy_clips_and_gives_no_gradient_past_the_cut():
    """Keras 2.2.4 tensorflow_backend.categorical_crossentropy: clip(p, 1e-7, 1 - 1e-7) before the log."""
    logits = torch.tensor([[40.0, -40.0], [0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([1, 0])  # the first example is confidently wrong: p_y = e^-80
    losses = keras_cross_entropy(logits, targets, reduction="none")
    assert float(losses[0].detach()) == pytest.approx(-math.log(torch.tensor(KERAS_EPSILON).item()), rel=1e-6)
    assert float(F.cross_entropy(logits.detach(), targets, reduction="none")[0]) == pytest.approx(80.0, rel=1e-6)
    losses.sum().backward()
    assert torch.all(logits.grad[0] == 0)  # clipped: no gradient, where torch's loss pushes with ~1
    assert torch.all(logits.grad[1] != 0)
    confident_right = torch.tensor([[40.0, -40.0]], requires_grad=True)
    keras_cross_entropy(confident_right, torch.tensor([0])).backward()
    assert torch.all(confident_right.grad == 0)  # p_y > 1 - 1e-7 is clipped too


def test_reductions_and_registry():
    logits, targets = torch.randn(5, 3), torch.randint(0, 3, (5,))
    per_example = keras_cross_entropy(logits, targets, reduction="none")
    assert per_example.shape == (5,)
    assert float(keras_cross_entropy(logits, targets, reduction="sum")) == pytest.approx(float(per_example.sum()))
    assert set(LOSSES) == {"keras_cross_entropy", "cross_entropy"}
    torch_loss = LOSSES.lookup("cross_entropy").fn
    assert float(torch_loss(logits, targets)) == pytest.approx(float(F.cross_entropy(logits, targets)))
    with pytest.raises(ValueError, match="unknown loss 'mse'; expected one of keras_cross_entropy, cross_entropy"):
        LOSSES.lookup("mse")
    with pytest.raises(ValueError, match="reduction='max'"):
        keras_cross_entropy(logits, targets, reduction="max")


def test_every_training_loss_names_a_bound_of_the_library():
    assert all(spec.bound in LOSS_BOUNDS for spec in LOSSES.values())
