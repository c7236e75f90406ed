"""lipschitz_lr.adaptive_lr: the scheduler as a whole (epoch 0, the guard, the scheduler API)."""

import math
import warnings

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR, EpochRecord
from tests.adaptive_helpers import (
    K_CLASSES,
    PAPER,
    _build,
    _trained,
    make_data,
    make_model,
    numpy_statistics,
    train_epoch,
)


def test_epoch_zero_uses_initial_weights_and_history_fields():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    k_z, _, wt = numpy_statistics(model, data)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, weight_decay=1e-3, **PAPER)
    record = sched.history[0]
    assert isinstance(record, EpochRecord) and record.epoch == 0 and record.note == ""
    expected_k = 3 / 32 * k_z + 1e-3 * wt
    assert record.k == pytest.approx(expected_k, rel=1e-6)  # fp32 model vs fp64 numpy
    assert record.lr == opt.param_groups[0]["lr"] == pytest.approx(1 / expected_k, rel=1e-6)  # fp32 model vs fp64 numpy


@pytest.mark.parametrize("poison", ["zero", "nan", "inf"])
def test_guard_keeps_previous_lr_on_zero_nan_inf(poison):
    model = make_model()
    data = make_data()
    if poison == "zero":
        with torch.no_grad():  # every head input is 0: K_z = 0, K = 0, 1/K = inf
            model[2].weight.zero_()
            model[2].bias.zero_()
    else:
        value = math.nan if poison == "nan" else math.inf
        data[1][0][0, 0] = value
    variant = "momentum" if poison == "nan" else "sgd"
    momentum = 0.9 if variant == "momentum" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=momentum, dampening=momentum)
    with pytest.warns(RuntimeWarning, match="not finite and positive; keeping the previous"):
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, variant=variant)
    assert sched.history[0].note == "guarded"
    assert sched.optimizer.param_groups[0]["lr"] == 0.123
    if poison == "nan":
        # NaN did not enter the EMA: a clean epoch gives a finite LR.
        data[1][0][0, 0] = 0.0
        sched.optimizer.step()
        sched.step()
        assert math.isfinite(sched.history[1].lr) and sched.history[1].note == ""


def test_error_step_with_epoch_argument():
    with pytest.raises(ValueError, match="takes no epoch"):
        _build().step(3)


def test_no_warnings_in_normal_use():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES)
        train_epoch(model, opt, data)
        sched.step()


def test_zero_k_z_keeps_the_previous_lr_even_with_weight_decay():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, K_CLASSES))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # every ReLU dead: the head's inputs are all zero
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="K_z=0.0"):
        sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, weight_decay=1e-3)
    assert sched.history[0].note == "guarded" and opt.param_groups[0]["lr"] == 0.1  # not 1/(lambda K_w)


def test_get_lr_has_no_side_effects_and_warns_outside_step():
    """torch guards get_lr against calls outside step(); ours must not run a pass or advance the EMAs."""
    _, _, opt, sched = _trained()
    before = (len(sched.history), sched._k1, sched._k2, sched._num_updates, opt.param_groups[0]["lr"])
    with pytest.warns(UserWarning, match="get_last_lr"):
        values = sched.get_lr()
    assert values == sched.get_last_lr()
    assert (len(sched.history), sched._k1, sched._k2, sched._num_updates, opt.param_groups[0]["lr"]) == before


def test_reference_steps_after_every_optimizer_step_warn_once():
    """Lightning's interval='step' ran a full pass per batch without a word."""
    model = make_model()
    data = make_data(n_batches=8, last=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES)
    with pytest.warns(UserWarning, match=r"after one optimizer step, .*8 batches\): call it once per epoch"):
        for x, y in data[:3]:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    assert sched._warned_per_batch
