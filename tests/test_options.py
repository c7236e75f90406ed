"""lipschitz_lr.options: one validated object from which AdaptiveLR's keywords, attributes, docstring and the
options part of its state_dict derive."""

import dataclasses
import inspect
import json
import re

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR, Options
from lipschitz_lr.options import GROUPS, names
from lipschitz_lr.records import Resolved


def _scheduler(**options):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return AdaptiveLR(opt, model, data, **{"num_classes": 3, **options})


def test_every_option_has_a_concern_a_doc_and_a_check():
    for f in dataclasses.fields(Options):
        assert f.metadata["group"] in GROUPS and len(f.metadata["doc"]) > 10 and callable(f.metadata["check"])


def test_the_keywords_attributes_docstring_and_state_derive_from_the_one_list():
    sched = _scheduler(weight_decay=1e-3, warmup_steps=2)
    signature = inspect.signature(AdaptiveLR)
    doc = AdaptiveLR.__doc__
    for name in names():
        assert signature.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert f"            {name}: " in doc and getattr(sched, name) == getattr(sched.options, name)
    state = sched.state_dict()
    assert set(names()) <= set(state) and json.loads(json.dumps(state))["weight_decay"] == 1e-3
    assert sched.min_lr is None and sched.max_lr is None and sched.batch_size is None  # as given
    assert sched.resolved == Resolved(min_lr=(0.0,), max_lr=(float("inf"),), batch_size=None, warmup_steps=2)
    with pytest.raises(AttributeError):
        sched.weight_decay = 0.5  # read-only: options change through load_state_dict


#: Bad option values, each refused at construction with an error naming it: (options, the error's words).
BAD_OPTIONS = [
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"variant": "nesterov"}, "unknown variant 'nesterov'"),
    ({"variant": "adamw"}, "unknown variant 'adamw'"),
    ({"num_classes": None}, "requires num_classes, got num_classes=None"),
    ({"num_classes": 1}, "num_classes"),
    ({"weight_decay": -1e-3}, "weight_decay=-0.001"),
    ({"weight_decay": float("nan")}, "weight_decay=nan"),
    ({"initial_lr": 0.0}, "initial_lr=0.0"),
    ({"initial_lr": -0.5}, "initial_lr=-0.5"),
    ({"min_lr": 0.5, "max_lr": 0.1}, "min_lr=0.5 > max_lr=0.1"),
    ({"min_lr": -1.0}, "min_lr=-1.0"),
    ({"keras_decay": "yes"}, "requires True or False for keras_decay"),
    ({"warmup_steps": 2, "warmup_epochs": 1}, "give warmup_steps or warmup_epochs, not both"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"max_growth": 1.0}, "max_growth"),
    ({"backoff": 1.0}, "backoff"),
    ({"beta1": 1.0}, "beta1"),
    ({"statistics": "forward"}, "statistics"),
    ({"batchnorm": "frozen"}, "batchnorm"),
    ({"rule": "smooth", "loss": "mae"}, "rule='smooth' needs a smooth loss"),
    ({"rule": "smooth", "variant": "adam"}, "rule='smooth' applies to variant 'sgd' or 'momentum'"),
    ({"bias_correction": True}, "bias_correction applies to variant 'rmsprop' or 'adam'"),
    ({"loss": "quantile"}, "tau"),
    ({"loss": "mse", "statistics": "hook"}, "requires target_norm"),
]


@pytest.mark.parametrize(("options", "words"), BAD_OPTIONS, ids=[" ".join(map(str, o)) for o, _ in BAD_OPTIONS])
def test_a_bad_option_is_refused_naming_it(options, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        Options(**{"num_classes": 3, **options})
    with pytest.raises(ValueError, match=re.escape(words)):
        _scheduler(**options)  # the scheduler checks through the same object


def test_options_are_checked_and_an_options_object_is_accepted():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['warmup'\]"):
        _scheduler(warmup=3)
    options = Options(num_classes=3, variant="adam")
    assert options.beta2 == 0.999 and options.replace(beta2=0.99).beta2 == 0.99
    model = nn.Sequential(nn.Linear(4, 3))
    data = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
    sched = AdaptiveLR(torch.optim.Adam(model.parameters()), model, data, options=options, bias_correction=True)
    assert sched.variant == "adam" and sched.bias_correction and sched.options.num_classes == 3


def test_a_state_saved_before_the_options_object_still_loads():
    """Per-group clamps were saved as min_lrs/max_lrs, and statistics/warmup_epochs were not saved."""
    sched = _scheduler()
    state = sched.state_dict()
    old = {k: v for k, v in state.items() if k not in ("min_lr", "max_lr", "statistics", "warmup_epochs", "resolved")}
    old.update(min_lrs=[0.0], max_lrs=[1.0])
    fresh = _scheduler()
    with pytest.warns(UserWarning, match=r"max_lr None -> \(1.0,\)"):
        fresh.load_state_dict(old)
    assert fresh.max_lr == (1.0,) and fresh.resolved.max_lr == (1.0,)  # its options were the resolved values
    with pytest.raises(ValueError, match="saved with statistics='hook' into an AdaptiveLR with statistics='reference'"):
        fresh.load_state_dict({**state, "statistics": "hook"})


def test_options_read_back_as_given_and_what_they_come_to_is_a_record_of_its_own():
    """warmup_epochs stays warmup_epochs and one min_lr stays one value; the steps, the per-group clamps and m are
    in ``resolved``, which a state_dict carries (a group added later keeps its unclamped rate after a resume)."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,))),
                                       batch_size=8)  # fmt: skip
    weights, biases = [model[0].weight, model[2].weight], [model[0].bias, model[2].bias]
    opt = torch.optim.SGD([{"params": weights, "lr": 0.1}, {"params": biases, "lr": 0.05}])
    sched = AdaptiveLR(opt, model, data, num_classes=3, warmup_epochs=1, min_lr=0.01)
    assert (sched.warmup_epochs, sched.warmup_steps, sched.min_lr) == (1, 0, 0.01)
    assert sched.options == Options(num_classes=3, warmup_epochs=1, min_lr=0.01)
    assert sched.resolved == Resolved(min_lr=(0.01, 0.005), max_lr=(float("inf"),) * 2, batch_size=8, warmup_steps=5)
    extra = nn.Parameter(torch.zeros(3))
    opt.add_param_group({"params": [extra], "lr": 0.1})
    opt.step()  # takes in the added group
    assert sched.resolved.min_lr == (0.01, 0.005, 0.0)
    state = json.loads(json.dumps(sched.state_dict()))
    resumed = AdaptiveLR(opt, model, data, num_classes=3, warmup_epochs=1, min_lr=0.01)
    resumed.load_state_dict(state)
    assert resumed.options == sched.options and resumed.resolved == sched.resolved
