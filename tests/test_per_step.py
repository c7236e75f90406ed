"""lipschitz_lr.per_step: the factors on each optimizer step's rate (the Keras decay, the warm-up)."""

import copy

import numpy as np
import pytest
import torch

from lipschitz_lr import AdaptiveLR
from tests.adaptive_helpers import K_CLASSES, make_data, make_model, train_epoch


def test_keras_decay_divides_every_iteration_by_one_plus_lambda_t():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lam = 0.05
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, weight_decay=lam, keras_decay=True)
    used = []
    opt.register_step_post_hook(lambda o, a, k: used.append(o.param_groups[0]["lr"]))
    for _ in range(3):
        train_epoch(model, opt, data)
        sched.step()
    epoch_lrs = [r.lr for r in sched.history]
    expected = [epoch_lrs[t // len(data)] / (1 + lam * t) for t in range(3 * len(data))]
    np.testing.assert_allclose(used, expected, rtol=1e-12)
    # After step(), the group holds the next iteration's value: epoch LR / (1 + lam * t).
    assert opt.param_groups[0]["lr"] == pytest.approx(epoch_lrs[3] / (1 + lam * 12))
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]


@pytest.mark.parametrize("statistics", ["reference", "hook"])
def test_warmup_ramps_each_optimizer_step_towards_the_computed_rate_and_resumes(statistics):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = make_data()  # 4 batches an epoch
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics=statistics, warmup_steps=6)
    rate = sched.history[0].lr
    assert opt.param_groups[0]["lr"] == pytest.approx(rate / 6)
    used = []
    opt.register_step_pre_hook(lambda o, *_: used.append(o.param_groups[0]["lr"]))  # after AdaptiveLR's hook
    train_epoch(model, opt, data)
    assert used == pytest.approx([rate * t / 6 for t in (1, 2, 3, 4)])
    sched.step()
    state = copy.deepcopy(sched.state_dict())
    second = sched.history[-1].lr
    train_epoch(model, opt, data)
    assert used[4:] == pytest.approx([second * 5 / 6, second, second, second])
    resumed = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics=statistics)
    with pytest.warns(UserWarning, match="warmup_steps 0 -> 6"):  # the step count and warmup_steps travel
        resumed.load_state_dict(state)
    assert resumed.warmup_steps == 6 and resumed._iteration == 4


def test_warmup_over_epochs_counts_the_loaders_batches():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, warmup_epochs=2)  # 4 batches an epoch
    assert sched.warmup_epochs == 2 and sched.resolved.warmup_steps == 8
    assert opt.param_groups[0]["lr"] == pytest.approx(sched.history[0].lr / 8)
    with pytest.raises(ValueError, match="give warmup_steps or warmup_epochs, not both"):
        AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, warmup_epochs=2, warmup_steps=3)
