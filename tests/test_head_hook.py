"""lipschitz_lr.head_hook: the statistics of the training passes."""

import pytest
import torch
from torch import nn

from lipschitz_lr.head_hook import HeadHook
from lipschitz_lr.models import max_weight_norm
from lipschitz_lr.statistics import collect_statistics
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
