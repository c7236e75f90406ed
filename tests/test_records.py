"""lipschitz_lr.records: what a state_dict holds and how it is restored and checked."""

import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR
from tests.adaptive_helpers import K_CLASSES, _build, _trained, make_data, make_model, train_epoch


def test_state_dict_round_trip_into_differently_configured_instance():
    data = make_data()
    model_a = make_model(seed=3)
    opt_a = torch.optim.SGD(model_a.parameters(), lr=0.1, momentum=0.9)
    kwargs = {"num_classes": K_CLASSES, "variant": "momentum", "weight_decay": 1e-3, "keras_decay": True}
    sched_a = AdaptiveLR(opt_a, model_a, data, **kwargs)
    for _ in range(2):
        train_epoch(model_a, opt_a, data)
        sched_a.step()
    state = sched_a.state_dict()

    # Plain values only: no model, loader, hook handle or tensor; loadable with weights_only.
    json.dumps(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    model_b = make_model(seed=99)
    model_b.load_state_dict(model_a.state_dict())
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.7, momentum=0.9)
    sched_b = AdaptiveLR(
        opt_b, model_b, data[:2], num_classes=K_CLASSES, variant="momentum", weight_decay=0.5, beta1=0.5, min_lr=1e-9
    )
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # else momentum buffers alias
    with pytest.warns(UserWarning, match="weight_decay 0.5 -> 0.001; beta1 0.5 -> 0.9"):
        sched_b.load_state_dict(state)
    sched_b._loader = data  # same data source (the loader is not part of the state)
    assert sched_b.history == sched_a.history
    for epoch in range(2):
        torch.manual_seed(epoch)  # same dropout masks for both
        train_epoch(model_a, opt_a, data)
        sched_a.step()
        torch.manual_seed(epoch)
        train_epoch(model_b, opt_b, data)
        sched_b.step()
    assert [r.lr for r in sched_b.history] == pytest.approx([r.lr for r in sched_a.history], rel=1e-12)
    assert opt_b.param_groups[0]["lr"] == pytest.approx(opt_a.param_groups[0]["lr"], rel=1e-12)


@pytest.mark.filterwarnings("ignore:variant='adam' with SGD:UserWarning")
def test_error_loading_state_of_another_variant():
    adam = _build(variant="adam")
    with pytest.raises(ValueError, match="variant 'adam' into an AdaptiveLR of variant 'sgd'"):
        _build().load_state_dict(adam.state_dict())


def test_load_state_dict_writes_the_restored_lr_in_the_common_resume_order():
    data, model_a, opt_a, sched_a = _trained()
    checkpoint = {"model": model_a.state_dict(), "opt": opt_a.state_dict(), "sched": sched_a.state_dict()}
    model_b = make_model(seed=7)
    model_b.load_state_dict(checkpoint["model"])
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    opt_b.load_state_dict(copy.deepcopy(checkpoint["opt"]))
    sched_b = AdaptiveLR(opt_b, model_b, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.1)
    assert opt_b.param_groups[0]["lr"] == 0.1  # construction wrote its own epoch-0 rate
    sched_b.load_state_dict(checkpoint["sched"])
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"] == sched_a.history[-1].lr
    assert sched_b.get_last_lr() == sched_a.get_last_lr()


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("weight_decay", -1.0, "weight_decay=-1.0"),
        ("num_classes", "4", "num_classes='4'"),
        ("batch_size", 0, "batch_size=0"),
        ("beta1", 1.5, "beta1=1.5"),
        ("_last_lr", [math.nan], "_last_lr=nan"),
        ("_k1", -2.0, "_k1=-2.0"),
        ("_epoch_lrs", [0.1, 0.2], r"state_dict\['_epoch_lrs'\] must be a list of 1"),
        ("history", [{"epoch": 0}], "EpochRecord fields"),
    ],
)
def test_load_state_dict_rejects_invalid_values_naming_them(key, value, named):
    _, _, _, sched = _trained()
    state = {**sched.state_dict(), key: value}
    with pytest.raises(ValueError, match=named):
        sched.load_state_dict(state)


def test_load_state_dict_warns_about_each_replaced_setting():
    _, _, _, sched = _trained()
    state = {**sched.state_dict(), "weight_decay": 1e-3, "batch_size": 4}
    with pytest.warns(UserWarning, match="weight_decay 0.0 -> 0.001; batch_size None -> 4"):
        sched.load_state_dict(state)
    assert (sched.weight_decay, sched.batch_size) == (1e-3, 4)


def test_hook_statistics_survive_a_mid_epoch_checkpoint():
    data = make_data()

    def fresh():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, K_CLASSES))
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    model, opt = fresh()
    whole = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    with torch.no_grad():
        for x, _ in data:
            model(x)
    opt.step()
    whole.step()

    model, opt = fresh()
    first = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    with torch.no_grad():
        for x, _ in data[:2]:
            model(x)
    state = first.state_dict()
    json.dumps(state)  # plain values
    first.remove_hooks()
    resumed = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    resumed.load_state_dict(state)
    with torch.no_grad():
        for x, _ in data[2:]:
            model(x)
    opt.step()
    resumed.step()
    assert resumed.history[1].k_z == whole.history[1].k_z and resumed.history[1].lr == whole.history[1].lr


def test_numpy_scalars_are_stored_as_plain_values():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(
        opt, model, make_data(), num_classes=np.int64(K_CLASSES), weight_decay=np.float64(1e-3), batch_size=np.int32(8)
    )
    assert type(sched.num_classes) is int and type(sched.batch_size) is int and type(sched.weight_decay) is float
    quantile = AdaptiveLR(
        torch.optim.SGD(model.parameters(), lr=0.1), model, make_data(), loss="quantile", tau=np.float32(0.9)
    )
    assert type(quantile.tau) is float
    for state in (sched.state_dict(), quantile.state_dict()):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)  # a numpy scalar in the state made this fail


def test_load_state_dict_refuses_another_num_classes():
    """A state saved for a 4-class head is refused by a scheduler of a 3-class head (it only warned, then wrote
    another model's rate)."""
    data = make_data()
    sched = AdaptiveLR(torch.optim.SGD(make_model().parameters(), lr=0.1), make_model(), data, num_classes=K_CLASSES)
    state = sched.state_dict()
    other = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    three = AdaptiveLR(torch.optim.SGD(other.parameters(), lr=0.1), other, [(x, y % 3) for x, y in data], num_classes=3)
    before = three.optimizer.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"saved with num_classes=4 into an AdaptiveLR with num_classes=3"):
        three.load_state_dict(state)
    assert three.optimizer.param_groups[0]["lr"] == before
