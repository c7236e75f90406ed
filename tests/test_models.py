"""lipschitz_lr.models: the head and the largest weight norm."""

import math

import pytest
import torch
from torch import nn

from lipschitz_lr.models import find_head, max_weight_norm
from tests.test_statistics import mlp_with_bn_dropout


def test_find_head_default_name_and_errors():
    model = mlp_with_bn_dropout()
    assert find_head(model) is model[4]
    assert find_head(model, "2") is model[2]
    assert find_head(model, model[0]) is model[0]
    with pytest.raises(ValueError, match="has no nn.Linear"):
        find_head(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="head='classifier' is not a submodule"):
        find_head(model, "classifier")
    with pytest.raises(ValueError, match="is not a module of"):
        find_head(model, nn.Linear(2, 2))


def test_max_weight_norm_is_largest_single_tensor_including_bn_buffers():
    model = mlp_with_bn_dropout()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
        model[2].running_var.fill_(100.0)  # norm 100 * sqrt(16) = 400
    model[2].num_batches_tracked.fill_(10**6)  # integer: skipped
    assert max_weight_norm(model) == pytest.approx(400.0)
    global_norm = math.sqrt(
        sum(float(t.double().square().sum()) for t in model.state_dict().values() if t.is_floating_point())
    )
    assert max_weight_norm(model) < global_norm
