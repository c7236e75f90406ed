"""lipschitz_lr._wiring: how AdaptiveLR meets the optimizer (param groups, their ratios and clamps, the momentum
mapping, the optimizer family, composition with other schedulers)."""

import pytest
import torch

from lipschitz_lr import AdaptiveLR
from tests.adaptive_helpers import K_CLASSES, PAPER, _build, make_data, make_model, numpy_statistics, train_epoch


@pytest.mark.filterwarnings("ignore:variant='momentum' with Adam:UserWarning")  # the non-SGD mapping is 1
def test_momentum_mapping_to_torch_heavy_ball_and_unseeded_start():
    model = make_model()
    data = make_data()
    k_z, _, _ = numpy_statistics(model, data)
    big_k = 3 / 32 * k_z
    heavy = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = AdaptiveLR(heavy, model, data, num_classes=K_CLASSES, variant="momentum", **PAPER)
    # Unseeded: K1 = 0.1 K, so the method's LR is 10/K; heavy-ball needs (1 - 0.9) of it.
    assert sched.history[0].method_lr == pytest.approx(10 / big_k, rel=1e-6)  # fp32 model vs fp64 numpy
    assert heavy.param_groups[0]["lr"] == pytest.approx(1 / big_k, rel=1e-6)  # fp32 model vs fp64 numpy
    ema = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    sched = AdaptiveLR(ema, model, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.5)
    assert ema.param_groups[0]["lr"] == 0.5 and sched.history[0].note == "initial_lr"
    adam = torch.optim.Adam(model.parameters(), lr=0.1)
    AdaptiveLR(adam, model, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.5)
    assert adam.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="momentum > 0, got momentum=0.0"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES, variant="momentum")


def test_sgd_variant_with_momentum_optimizer_warns():
    model = make_model()
    with pytest.warns(UserWarning, match="use variant='momentum'"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), model, make_data(), num_classes=4)


def test_param_groups_keep_their_ratio_and_clamps_apply_per_group():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.2},
            {"params": model[2].parameters(), "lr": 0.05},
            {"params": model[4].parameters(), "lr": 0.0},
        ],
        lr=0.1,
    )
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, max_lr=[10.0, 0.01, 1.0])
    lr = sched.history[0].method_lr
    assert lr / 4 > 0.01  # so the clamp on group 1 bites
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, 0.01, 0.0])
    assert sched.history[0].note == "clamped"
    sched2 = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=4, min_lr=100.0)
    assert sched2.get_last_lr() == [100.0]


def test_error_per_group_list_of_wrong_length():
    with pytest.raises(ValueError, match="max_lr has 2 values but the optimizer has 1 param groups"):
        _build(max_lr=[1.0, 2.0])


def test_an_optimizer_of_another_family_than_the_variant_warns():
    model = make_model()
    with pytest.warns(UserWarning, match="variant='sgd' with Adam.*use variant='adam'"):
        AdaptiveLR(torch.optim.Adam(model.parameters(), lr=0.1), model, make_data(), num_classes=K_CLASSES)


def test_a_model_on_the_meta_device_and_an_optimizer_without_groups_are_refused():
    with torch.device("meta"):
        meta = make_model()
    with pytest.raises(ValueError, match=r"on the meta device .*model\.to_empty"):
        AdaptiveLR(torch.optim.SGD(meta.parameters(), lr=0.1), meta, make_data(), num_classes=K_CLASSES)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.param_groups.clear()
    with pytest.raises(ValueError, match="at least one param group, got SGD with none"):
        AdaptiveLR(optimizer, model, make_data(), num_classes=K_CLASSES)


def test_param_groups_added_after_construction_take_their_ratio():
    """Gradual unfreezing: optimizer.add_param_group crashed step() ("zip() argument 2 is shorter")."""
    model = make_model()
    opt = torch.optim.SGD(list(model[0].parameters()), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, weight_decay=1e-3, keras_decay=True)
    train_epoch(model, opt, make_data())
    opt.add_param_group({"params": list(model[4].parameters()), "lr": 0.05})
    train_epoch(model, opt, make_data())  # the Keras decay's step hook meets the new group first
    sched.step()
    first, added = (group["lr"] for group in opt.param_groups)
    assert added == pytest.approx(first / 2) and len(sched.state_dict()["base_lrs"]) == 2


def test_one_clamp_value_keeps_the_groups_ratios():
    model = make_model()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1}, {"params": model[4].parameters(), "lr": 0.01}])
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, max_lr=1e-3)
    assert sched.history[0].note == "clamped"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])


def _composite_setup():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES)


def test_sequential_and_chained_schedulers_are_refused_pointing_to_warmup():
    """SequentialLR warmed up to the nominal lr, then jumped to a stale 1/K; ChainedScheduler ignored the warm-up
    or multiplied 1/K (training blew up)."""
    sched = torch.optim.lr_scheduler
    model, opt, adaptive = _composite_setup()
    with pytest.raises(ValueError, match=r"not composable with SequentialLR or ChainedScheduler; .*warmup_steps"):
        sched.SequentialLR(opt, [adaptive, sched.LinearLR(opt, 0.1, total_iters=2)], milestones=[2])

    model, opt, adaptive = _composite_setup()
    linear = sched.LinearLR(opt, 0.1, total_iters=2)
    sched.SequentialLR(opt, [linear, adaptive], milestones=[2])
    with pytest.raises(ValueError, match=r"holds .* at this optimizer step: another scheduler.*warmup_steps"):
        train_epoch(model, opt, make_data())

    for order in ("adaptive first", "adaptive last"):
        model, opt, adaptive = _composite_setup()
        linear = sched.LinearLR(opt, 0.1, total_iters=2)
        chained = sched.ChainedScheduler([adaptive, linear] if order == "adaptive first" else [linear, adaptive])
        with pytest.raises(ValueError, match="another scheduler or the training code changed it"):
            train_epoch(model, opt, make_data())
            chained.step()
            train_epoch(model, opt, make_data())
