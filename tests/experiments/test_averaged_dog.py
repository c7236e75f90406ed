"""lipschitz_lr_experiments.averaged_dog: DoG with its polynomial-decay averager, evaluated at the average."""

import pytest
import torch
from torch import nn

from lipschitz_lr_experiments.optimizers import build_optimizer


def test_averaged_dog_evaluates_the_average_and_trains_the_iterate():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = build_optimizer("dog", model, 1.0)
    start = [p.detach().clone() for p in model.parameters()]
    for _ in range(30):  # DoG's first steps are tiny (r_eps = 1e-6 (1 + |x0|)): let it grow
        optimizer.zero_grad()
        model(torch.randn(16, 4)).square().mean().backward()
        optimizer.step()
    trained = [p.detach().clone() for p in model.parameters()]
    assert optimizer.averager.t == 31
    optimizer.eval()
    averaged = [p.detach().clone() for p in model.parameters()]
    assert all(not torch.equal(a, t) for a, t in zip(averaged, trained, strict=True))
    assert all(not torch.equal(a, s) for a, s in zip(averaged, start, strict=True))
    with pytest.raises(RuntimeError, match="call train"):
        optimizer.state_dict()
    with pytest.raises(RuntimeError, match="eval mode"):
        optimizer.step()
    optimizer.eval()  # twice: still the training weights kept aside, not the average
    optimizer.train()
    assert all(torch.equal(p, t) for p, t in zip(model.parameters(), trained, strict=True))
    state = optimizer.state_dict()
    fresh = build_optimizer("dog", model, 1.0)
    fresh.load_state_dict(state)
    assert fresh.averager.t == 31
    with pytest.raises(ValueError, match="no 'averager' entry"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "averager"})
