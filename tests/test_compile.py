"""AdaptiveLR under torch.compile: no recompilation per batch, the training forward stays compiled,
and the statistics are those of eager mode (backend aot_eager: dynamo and AOTAutograd without a C++
compiler, so the numbers equal eager's)."""

import pytest
import torch
import torch._dynamo
from torch import nn

from lipschitz_lr import AdaptiveLR


def run(statistics, compiled, epochs=3):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 3)
    )
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(5)]
    data.append((torch.randn(3, 1, 8, 8, generator=g), torch.randint(0, 3, (3,), generator=g)))  # partial batch
    net = torch.compile(model, backend="aot_eager", dynamic=False) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, net, data, num_classes=3, statistics=statistics, batch_size=8)
    grad_fns = set()
    for _ in range(epochs):
        for x, y in data:
            opt.zero_grad()
            out = net(x)
            grad_fns.add(type(out.grad_fn).__name__)
            nn.functional.cross_entropy(out, y).backward()
            opt.step()
        sched.step()
    return sched, grad_fns


@pytest.mark.parametrize("statistics", ["reference", "hook"])
def test_compiled_training_is_not_recompiled_and_matches_eager(statistics):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    # Two input shapes (full and partial batch), plus one recompile in hook mode when the statistics
    # tensor is first allocated: a handful of graphs, never one per batch (3 epochs x 6 batches).
    with recompile_limit(4):
        compiled, grad_fns = run(statistics, compiled=True)
    assert grad_fns == {"CompiledFunctionBackward"}  # never fell back to eager
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 4
    eager, _ = run(statistics, compiled=False)
    assert [(r.k_z, r.lr) for r in compiled.history] == [(r.k_z, r.lr) for r in eager.history]


def recompile_limit(limit):
    """Dynamo's limit on graphs per frame, an error when hit where torch can (``recompile_limit`` and
    ``fail_on_recompile_limit_hit`` in newer torch; ``cache_size_limit`` alone in older, which falls back to
    eager past it: the test's ``CompiledFunctionBackward`` check then fails instead)."""
    keys = torch._dynamo.config._config
    if "recompile_limit" in keys:
        return torch._dynamo.config.patch(recompile_limit=limit, fail_on_recompile_limit_hit=True)
    extra = {"fail_on_cache_limit_hit": True} if "fail_on_cache_limit_hit" in keys else {}
    return torch._dynamo.config.patch(cache_size_limit=limit, **extra)


def small_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


def small_data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]


def hook_epoch(net, opt, sched, data, between_batches=lambda x: None):
    """One training epoch of ``net``, then ``sched.step()``; its record."""
    for x, y in data:
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        between_batches(x)
        opt.step()
    sched.step()
    return sched.history[-1]


def test_hook_mode_explains_a_hook_that_dynamo_skipped():
    """A graph compiled before AdaptiveLR registered its head hook does not run the hook: step() says
    so and names the ways out; with torch._dynamo.reset() after AdaptiveLR is created, the same setup
    gives eager's statistics."""
    data = small_data()

    def epoch(compiled, reset=False):
        torch._dynamo.reset()
        plain = small_model()
        net = torch.compile(plain, backend="aot_eager", dynamic=False) if compiled else plain
        net(data[0][0])  # compiled before the scheduler exists
        opt = torch.optim.SGD(plain.parameters(), lr=0.1)
        sched = AdaptiveLR(opt, net, data, num_classes=3, statistics="hook", batch_size=8)
        if reset:
            torch._dynamo.reset()
        return hook_epoch(net, opt, sched, data)

    with pytest.raises(ValueError, match=r"no batch reached the head .*torch.compile'd.*torch._dynamo.reset\(\)"):
        epoch(compiled=True)
    record, eager = epoch(compiled=True, reset=True), epoch(compiled=False)
    assert (record.k_z, record.lr) == (eager.k_z, eager.lr)


def test_hook_mode_is_not_fed_by_another_compiled_instance_of_the_class():
    """With dynamo's default (no guards on module hooks) a second compiled model of the same class,
    run between steps (an EMA copy, a teacher), shares the hooked graph and changed K_z (4.79 against
    eager's 8.85 here). AdaptiveLR in hook mode on a compiled model turns the hook guards on."""
    data = small_data()

    def k_z(compiled):
        torch._dynamo.reset()
        a, b = small_model(0), small_model(1)
        net = torch.compile(a, backend="aot_eager") if compiled else a
        other = torch.compile(b, backend="aot_eager") if compiled else b
        opt = torch.optim.SGD(a.parameters(), lr=0.1)
        sched = AdaptiveLR(opt, net, data, num_classes=3, statistics="hook", batch_size=8)
        return hook_epoch(net, opt, sched, data, between_batches=lambda x: other(100 * x)).k_z

    with torch._dynamo.config.patch(skip_nnmodule_hook_guards=True):  # dynamo's default, restored after
        assert k_z(compiled=True) == k_z(compiled=False)
        assert torch._dynamo.config.skip_nnmodule_hook_guards is False
