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
    with torch._dynamo.config.patch(recompile_limit=4, fail_on_recompile_limit_hit=True):
        compiled, grad_fns = run(statistics, compiled=True)
    assert grad_fns == {"CompiledFunctionBackward"}  # never fell back to eager
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 4
    eager, _ = run(statistics, compiled=False)
    assert [(r.k_z, r.lr) for r in compiled.history] == [(r.k_z, r.lr) for r in eager.history]


def test_hook_mode_explains_a_hook_that_dynamo_skipped():
    """Dynamo does not guard on module hooks: after another instance of the class was compiled, the
    head hook of a new compiled model never runs. step() says so and names the ways out; with
    torch._dynamo.reset() after AdaptiveLR is created, the same setup gives eager's statistics."""

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))

    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]

    def epoch(net, opt, sched):
        for x, y in data:
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        sched.step()
        return sched.history[-1]

    def setup(compiled, reset=False):
        plain = model()
        net = torch.compile(plain, backend="aot_eager", dynamic=False) if compiled else plain
        opt = torch.optim.SGD(plain.parameters(), lr=0.1)
        sched = AdaptiveLR(opt, net, data, num_classes=3, statistics="hook", batch_size=8)
        if reset:
            torch._dynamo.reset()
        return net, opt, sched

    torch._dynamo.reset()
    torch.compile(model(), backend="aot_eager", dynamic=False)(data[0][0])  # another instance, compiled first
    with pytest.raises(ValueError, match=r"no batch reached the head .*torch.compile'd.*torch._dynamo.reset\(\)"):
        epoch(*setup(compiled=True))
    torch._dynamo.reset()
    torch.compile(model(), backend="aot_eager", dynamic=False)(data[0][0])
    record = epoch(*setup(compiled=True, reset=True))
    eager = epoch(*setup(compiled=False))
    assert (record.k_z, record.lr) == (eager.k_z, eager.lr)
