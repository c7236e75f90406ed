import pytest
import torch
from torch import nn

from lipschitz_lr.variants import VARIANTS
from lipschitz_lr_experiments.errors import ConfigError
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.optimizers import (
    OPTIMIZERS,
    build_optimizer,
    missing_package,
    param_groups,
    switch,
)


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_every_variant_has_its_paper_optimizer_and_each_named_variant_exists():
    """The paper's four optimizers carry their own variant; Schedule-Free SGD carries 'sgd' (LipschitzLR setting its
    lr, the issue-31 candidate); no other optimizer has one."""
    paired = {name: spec.variant for name, spec in OPTIMIZERS.items() if spec.variant is not None}
    assert {name: variant for name, variant in paired.items() if name in VARIANTS} == {v: v for v in VARIANTS}
    assert {name: variant for name, variant in paired.items() if name not in VARIANTS} == {"schedulefree_sgd": "sgd"}


@pytest.mark.parametrize(
    ("name", "cls", "defaults"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0, "dampening": 0}),
        ("momentum", torch.optim.SGD, {"momentum": 0.9, "dampening": 0.0}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.9, "eps": 1e-7}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "eps": 1e-7}),
    ],
)
def test_core_optimizers_have_keras_constants(name, cls, defaults):
    optimizer = build_optimizer(name, small_cnn(), 0.01)
    assert type(optimizer) is cls and optimizer.defaults["lr"] == 0.01
    assert {key: optimizer.defaults[key] for key in defaults} == defaults


def test_lipschitz_momentum_is_the_authors_ema_form():
    """v = 0.9 v + 0.1 g: torch's SGD with dampening 0.9 (AdaptiveLR then maps the rate)."""
    optimizer = build_optimizer("momentum", small_cnn(), 0.01, ema_momentum=True)
    assert (optimizer.defaults["momentum"], optimizer.defaults["dampening"]) == (0.9, 0.9)


def test_kernel_l2_puts_conv_kernels_in_their_own_group_with_twice_the_coefficient():
    model = small_cnn()
    groups = param_groups(model, kernel_l2=1e-4)
    assert [g["weight_decay"] for g in groups] == [2e-4, 0.0]
    assert groups[0]["params"] == [model[0].weight]
    assert len(groups[1]["params"]) == 3  # conv bias, linear weight and bias
    assert len(param_groups(model, kernel_l2=0.0)) == 1


def test_a_model_can_name_its_regularised_modules():
    model = build_model("densenet40", 10)
    groups = param_groups(model, kernel_l2=1e-4)
    assert len(groups[0]["params"]) == len(model.l2_regularized_modules()) == 3


def test_densenet_l2_groups_are_the_same_inside_a_ddp_or_compile_wrapper(tmp_path):
    """Under torchrun the optimizer was built over the DDP wrapper, which hides l2_regularized_modules: the L2 went
    on all 39 conv kernels instead of DenseNet-40's 3."""
    import torch.distributed as dist

    model = build_model("densenet40", 10)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(model)
        for wrapper in (wrapped, torch.compile(model)):
            groups = param_groups(wrapper, kernel_l2=1e-4)
            assert len(groups[0]["params"]) == 3
            assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
            optimizer = build_optimizer("sgd", wrapper, 0.1, kernel_l2=1e-4)
            assert [len(g["params"]) for g in optimizer.param_groups] == [len(g["params"]) for g in groups]
    finally:
        dist.destroy_process_group()


def test_external_optimizers_build_and_only_the_averaging_ones_switch_weights():
    assert missing_package("sgd") is None
    for name in ("dadapt_sgd", "prodigy", "schedulefree_sgd", "dog", "momo", "cocob"):
        assert missing_package(name) is None  # the baselines extra is part of the dev install
        optimizer = build_optimizer(name, small_cnn(), 1.0)
        assert switch(optimizer, "train") == (name in ("schedulefree_sgd", "dog"))


def test_an_unknown_optimizer_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown optimizer 'lars'; expected one of sgd, momentum, rmsprop, adam"):
        build_optimizer("lars", small_cnn(), 0.1)


def test_a_missing_package_is_named_by_the_config_and_by_build_optimizer(monkeypatch):
    from lipschitz_lr_experiments.config import from_dict
    from lipschitz_lr_experiments.optimizers import OptimizerSpec

    monkeypatch.setitem(OPTIMIZERS, "absent", OptimizerSpec(lambda *_: None, package="no_such_package_xyz"))
    message = "optimizer='absent' needs the package 'no_such_package_xyz'"
    with pytest.raises(ConfigError, match=message):
        from_dict(
            {"name": "x", "dataset": "mnist", "model": "mnist_cnn", "optimizer": "absent", "schedule": "constant"}
        )
    with pytest.raises(ConfigError, match=message):
        build_optimizer("absent", small_cnn(), 0.1)
