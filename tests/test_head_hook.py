"""lipschitz_lr.head_hook: the statistics of the training passes."""

import copy
import io

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.head_hook import HeadHook
from lipschitz_lr.models import max_weight_norm
from lipschitz_lr.statistics import collect_statistics
from tests.adaptive_helpers import K_CLASSES, PAPER, _hook_run, make_data, make_model, train_epoch
from tests.test_statistics import batches


def test_hook_matches_reference_pass_without_bn_dropout_and_fixed_weights():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    data = batches(n_batches=4, m=8, last=3)
    with HeadHook(model[-1]) as hook:
        model.train()
        with torch.no_grad():
            for x, _ in data:
                model(x)
        model.eval()
        for x, _ in data:  # evaluation passes are ignored
            model(x * 1000)
        hooked = hook.accumulator.result(max_weight_norm(model))
    reference = collect_statistics(model, data)
    assert hooked.k_z == pytest.approx(reference.k_z, rel=1e-12)
    assert hooked.s == pytest.approx(reference.s, rel=1e-12)
    assert hooked.num_batches == reference.num_batches == 4


def test_head_hook_loads_the_earlier_state_format():
    """Checkpoints written before the pending/counted split held the counted maxima alone."""
    head = torch.nn.Linear(3, 2)
    hook = HeadHook(head, torch.optim.SGD(head.parameters(), lr=0.1))
    hook.load_state_dict({"maxima": [2.0, 3.0, 1.0, 0.0, 8.0], "num_batches": 4})
    assert hook.accumulator.maxima().tolist() == [2.0, 3.0, 1.0, 0.0, 8.0] and hook.accumulator.num_batches == 4
    assert hook.pending.num_batches == 0
    hook.remove()


def test_hook_mode_uses_training_forward_passes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, K_CLASSES))
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook", **PAPER)
    reference = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES, **PAPER)
    assert sched.history[0].k_z == pytest.approx(reference.history[0].k_z)  # epoch 0 from the loader
    model.train()
    with torch.no_grad():  # weights fixed and no BN/Dropout: hook and reference agree
        for x, _ in data:
            model(x)
    model.eval()
    with torch.no_grad():
        model(data[0][0] * 100)  # an evaluation pass is not counted
    opt.step()
    sched.step()
    assert sched.history[1].k_z == pytest.approx(reference.history[0].k_z, rel=1e-12)
    assert sched.history[1].lr == pytest.approx(reference.history[0].lr, rel=1e-12)
    opt.step()
    with pytest.raises(ValueError, match="no batch reached the head"):
        sched.step()  # no training forward pass since the last step
    sched.remove_hooks()


def test_remove_hooks_in_hook_mode_then_step_raises():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, statistics="hook")
    sched.remove_hooks()
    train_epoch(model, opt, make_data())
    with pytest.raises(RuntimeError, match="remove_hooks\\(\\) detached the forward hook"):
        sched.step()


def test_hook_mode_ignores_forward_passes_of_another_optimizer():
    """An LR finder's forward passes (followed by its own optimizer's steps) are not this epoch's statistics."""
    (clean, _), (after_finder, _) = _hook_run(), _hook_run(finder_batches=15)
    assert after_finder.history[1].k_z == clean.history[1].k_z and after_finder.history[1].lr == clean.history[1].lr


def test_reset_statistics_forgets_forward_passes_since_the_last_step():
    def run(extra_forward, reset):
        data = make_data()
        torch.manual_seed(2)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, K_CLASSES))  # no BN: big inputs stay big
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
        model.train()
        if extra_forward:
            model(torch.randn(8, 6) * 40)
            opt.step()  # counted: this optimizer stepped after it (no gradients: the weights stay)
        if reset:
            sched.reset_statistics()
        torch.manual_seed(5)
        for x, _ in data:
            model(x)
            opt.step()
        sched.step()
        return sched.history[1].k_z

    clean = run(extra_forward=False, reset=False)
    assert run(extra_forward=True, reset=True) == clean
    assert run(extra_forward=True, reset=False) > clean


def test_hook_mode_every_n_optimizer_steps_is_one_record_per_period():
    """step() every 2 optimizer steps: each record's K_z is the max over exactly its 2 batches."""
    sched, norms = _hook_run(steps_per_period=2)
    assert [r.epoch for r in sched.history] == [0, 1, 2, 3] and len(norms) == 6
    for period, record in enumerate(sched.history[1:]):
        assert record.k_z == pytest.approx(max(norms[2 * period : 2 * period + 2]), rel=1e-12)
        assert record.lr == pytest.approx(1 / ((K_CLASSES - 1) / (K_CLASSES * 8) * record.k_z), rel=1e-12)


def test_hook_mode_counts_forward_passes_inside_a_step_closure():
    """Lightning (and LBFGS-style loops) run the forward pass inside optimizer.step(closure): it counts
    for that step, so each epoch's statistics are the same as in a plain loop."""

    def run(closure_style):
        data = make_data(n_batches=5, m=8, last=8)
        data[-1] = (data[-1][0] * 10, data[-1][1])  # the epoch's largest K_z is its last batch
        torch.manual_seed(2)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, K_CLASSES))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook", batch_size=8, **PAPER)
        for _ in range(2):
            for x, y in data:

                def closure(x=x, y=y):
                    opt.zero_grad()
                    loss = nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    return loss

                if closure_style:
                    opt.step(closure)
                else:
                    closure()
                    opt.step()
            sched.step()
        return [(r.k_z, r.lr) for r in sched.history]

    assert run(closure_style=True) == run(closure_style=False)


def test_a_model_in_hook_mode_pickles_and_its_copies_feed_no_statistics():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, statistics="hook")
    buffer = io.BytesIO()
    torch.save(model, buffer)  # "Can't pickle local object 'HeadHook.__init__.<locals>.<lambda>'"
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    ema = copy.deepcopy(model)
    train_epoch(ema, torch.optim.SGD(ema.parameters(), lr=0.1), make_data())  # the copy's passes
    restored.train()
    restored(make_data()[0][0])
    assert sched._hook.accumulator.num_batches == 0 and sched._hook.pending.num_batches == 0
    train_epoch(model, opt, make_data())
    sched.step()
    assert sched.history[-1].k_z > 0
