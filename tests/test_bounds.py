import math

import numpy as np
import pytest
import torch

from lipschitz_lr import bounds


def test_cross_entropy_bound_hand_computed():
    # (k-1)/(k m) K_z = 9/(10*128) * 206.695
    assert bounds.cross_entropy_bound(206.695, num_classes=10, batch_size=128) == pytest.approx(1.453324219, rel=1e-9)
    assert bounds.cross_entropy_bound(4.0, num_classes=2, batch_size=1) == 2.0


def test_paper_fixed_lr_case():
    # Paper (ResNet-20, CIFAR-10): K_z = 206.695, max weight norm 43.257, lambda 1e-3, k 10, m 128.
    k = bounds.cross_entropy_bound(206.695, 10, 128) + bounds.weight_decay_bound(1e-3, 43.257)
    assert 1.0 / k == pytest.approx(0.668, abs=5e-4)


def test_binary_cross_entropy_bound():
    assert bounds.binary_cross_entropy_bound(12.0, batch_size=3) == 2.0


def test_mse_bound_both_signs():
    # (1/m)(K_a +- ||y||) K_z with m=2, K_a=5, ||y||=3, K_z=4
    assert bounds.mse_bound(4.0, 2, output_bound=5.0, target_norm=3.0) == 16.0
    assert bounds.mse_bound(4.0, 2, output_bound=5.0, target_norm=3.0, sign="minus") == 4.0
    # The authors' sign can go negative: it is not a bound.
    assert bounds.mse_bound(4.0, 2, output_bound=1.0, target_norm=3.0, sign="minus") == -4.0


def test_mae_and_quantile_bounds():
    assert bounds.mae_bound(6.0, batch_size=3) == 2.0
    assert bounds.mae_bound(6.0, batch_size=3, num_outputs=4, average_outputs=True) == 0.5
    assert bounds.quantile_bound(6.0, batch_size=3, tau=0.25) == pytest.approx(1.5)
    assert bounds.quantile_bound(6.0, batch_size=3, tau=0.5) == pytest.approx(1.0)


def test_weight_decay_and_second_moment():
    assert bounds.weight_decay_bound(0.01, 30.0) == pytest.approx(0.3)
    # c^2 S + 2 lam K_w c K_z = 0.25*8 + 2*0.1*3*0.5*2
    assert bounds.second_moment_bound(0.5, k_z=2.0, s=8.0, weight_decay=0.1, max_weight_norm=3.0) == (
        pytest.approx(2.0 + 0.6)
    )


def test_loss_coefficient_matches_each_bound():
    assert bounds.loss_coefficient("cross_entropy", 128, num_classes=10) == 9 / 1280
    assert bounds.loss_coefficient("binary_cross_entropy", 8) == 1 / 16
    assert bounds.loss_coefficient("mae", 8) == 1 / 8
    assert bounds.loss_coefficient("quantile", 8, tau=0.9) == pytest.approx(0.9 / 8)
    assert bounds.loss_coefficient("mse", 2, output_bound=5.0, target_norm=3.0) == 4.0


def test_classical_closed_forms():
    x = np.array([[1.0, 2.0], [2.0, 0.0], [0.0, 2.0]])  # ||X||_F = sqrt(13)
    assert bounds.logistic_regression_bound(x) == pytest.approx(math.sqrt(13) / 6)
    assert bounds.softmax_regression_bound(x, num_classes=3) == pytest.approx(2 / 9 * math.sqrt(13))
    y = np.array([1.0, 0.0, 1.0])
    gram = np.linalg.norm(x.T @ x, 2)  # X^T X = [[5,2],[2,8]], eigenvalues 4 and 9
    assert gram == pytest.approx(9.0)
    cross = np.linalg.norm(y @ x)  # y^T X = [1, 4]
    assert bounds.linear_regression_bound(x, y, weight_bound=2.0) == pytest.approx((2 * 9 + cross) / 3)
    assert bounds.linear_regression_bound(x, y, 2.0, sign="minus") == pytest.approx((18 - math.sqrt(17)) / 3)
    # tensors too, of any dtype (and device: a CUDA tensor is copied to the host; tests/test_gpu.py)
    tx, ty = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    assert bounds.logistic_regression_bound(tx) == pytest.approx(math.sqrt(13) / 6)
    assert bounds.linear_regression_bound(tx, ty, 2.0) == pytest.approx((2 * 9 + cross) / 3)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: bounds.cross_entropy_bound(1.0, num_classes=1, batch_size=4), "num_classes=1"),
        (lambda: bounds.cross_entropy_bound(1.0, num_classes=10, batch_size=0), "batch_size=0"),
        (lambda: bounds.cross_entropy_bound(-1.0, num_classes=10, batch_size=4), "k_z=-1.0"),
        (lambda: bounds.cross_entropy_bound(math.nan, num_classes=10, batch_size=4), "k_z=nan"),
        (lambda: bounds.binary_cross_entropy_bound(1.0, batch_size=2.5), "batch_size=2.5"),
        (lambda: bounds.mse_bound(1.0, 2, 1.0, 1.0, sign="times"), "sign='times'"),
        (lambda: bounds.mae_bound(1.0, 2, num_outputs=0, average_outputs=True), "num_outputs=0"),
        (lambda: bounds.quantile_bound(1.0, 2, tau=1.0), "tau=1.0"),
        (lambda: bounds.weight_decay_bound(-1e-3, 1.0), "weight_decay=-0.001"),
        (lambda: bounds.weight_decay_bound(1e-3, math.inf), "max_weight_norm=inf"),
        (lambda: bounds.loss_coefficient("hinge", 4), "'hinge'"),
        (lambda: bounds.loss_coefficient("cross_entropy", 4), "num_classes=None"),
        (lambda: bounds.loss_coefficient("quantile", 4), "tau=None"),
        (lambda: bounds.logistic_regression_bound(np.zeros(3)), "shape (3,)"),
        (lambda: bounds.logistic_regression_bound([[1.0, math.nan]]), "NaN"),
        (lambda: bounds.linear_regression_bound([[1.0]], [1.0], weight_bound=-1), "weight_bound=-1"),
    ],
)
def test_invalid_arguments_name_the_value(call, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        call()
