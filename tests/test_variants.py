import math

import pytest
import torch

from lipschitz_lr.variants import VARIANTS, expected_variant


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sgd", 1 / 4.0),
        ("momentum", 1 / 2.0),
        ("rmsprop", (math.sqrt(9.0) + 1e-7) / 5.0),
        ("adam", (math.sqrt(9.0) + 1e-7) / 2.0),
    ],
)
def test_each_variant_rate_is_its_formula(name, expected):
    # k = 4, K1 = 2, K2 = 9, K_z = 5, eps = 1e-7
    assert VARIANTS[name].learning_rate(4.0, 2.0, 9.0, 5.0, 1e-7) == pytest.approx(expected, rel=1e-15)


def test_a_zero_denominator_gives_inf_not_an_error():
    assert all(v.learning_rate(0.0, 0.0, 1.0, 0.0, 1e-7) == math.inf for v in VARIANTS.values())


def test_each_torch_optimizer_maps_to_one_variant():
    p = [torch.nn.Parameter(torch.zeros(1))]
    assert expected_variant(torch.optim.SGD(p, lr=0.1)) == "sgd"
    assert expected_variant(torch.optim.SGD(p, lr=0.1, momentum=0.9)) == "momentum"
    assert expected_variant(torch.optim.RMSprop(p, lr=0.1)) == "rmsprop"
    assert expected_variant(torch.optim.Adam(p, lr=0.1)) == expected_variant(torch.optim.AdamW(p, lr=0.1)) == "adam"
    assert expected_variant(torch.optim.Adagrad(p, lr=0.1)) is None


def test_only_the_second_moment_variants_take_bias_correction_and_rmsprop_uses_keras_rho():
    assert [n for n, v in VARIANTS.items() if v.second_moment] == ["rmsprop", "adam"]
    assert [n for n, v in VARIANTS.items() if not v.uses_emas] == ["sgd"]
    assert VARIANTS["rmsprop"].default_beta2 == 0.9 and VARIANTS["adam"].default_beta2 == 0.999
