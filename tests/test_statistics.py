import math

import pytest
import torch
from torch import nn

from lipschitz_lr.models import max_weight_norm
from lipschitz_lr.statistics import StatisticsAccumulator, collect_statistics


def mlp_with_bn_dropout(d_in=6, hidden=16, k=4):
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(0.5), nn.Linear(hidden, k)
    )


def batches(n_batches=3, m=8, d_in=6, last=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [m] * (n_batches - 1) + [last]
    return [(torch.randn(size, d_in, generator=g) * 3, torch.randint(0, 4, (size,), generator=g)) for size in sizes]


def head_inputs(model, data):
    """Penultimate activations computed by slicing the Sequential (an independent path)."""
    with torch.no_grad():
        return [model[:-1](x) for x, _ in data]


def test_reference_pass_matches_hand_computation_and_keeps_partial_batch():
    torch.manual_seed(0)
    model = mlp_with_bn_dropout()
    model.train()
    model[2].running_mean.uniform_(-1, 1)
    model[2].running_var.uniform_(0.5, 2)
    data = batches(n_batches=3, m=8, last=5)
    # Make the partial last batch the largest, so dropping it would change K_z.
    data[-1] = (data[-1][0] * 50, data[-1][1])
    running_mean = model[2].running_mean.clone()
    model.eval()
    activations = head_inputs(model, data)
    model.train()
    stats = collect_statistics(model, data)
    expected_k_z = max(float(a.double().norm()) for a in activations)
    expected_s = max(float(a.double().square().norm()) for a in activations)
    assert stats.k_z == pytest.approx(expected_k_z, rel=1e-12)
    assert stats.s == pytest.approx(expected_s, rel=1e-12)
    assert stats.k_z == pytest.approx(float(activations[-1].double().norm()), rel=1e-12)
    assert stats.num_batches == 3 and stats.batch_rows == 8
    assert stats.max_weight_norm == pytest.approx(max_weight_norm(model))
    # BN running statistics untouched, training mode restored.
    assert torch.equal(model[2].running_mean, running_mean)
    assert model.training and all(m.training for m in model.modules())


def test_reference_pass_restores_mixed_module_modes_even_on_error():
    model = mlp_with_bn_dropout()
    model.train()
    model[2].eval()  # a frozen BN inside a training model

    def bad_loader():
        yield batches(1)[0]
        raise RuntimeError("loader broke")

    with pytest.raises(RuntimeError, match="loader broke"):
        collect_statistics(model, bad_loader())
    assert model.training and model[0].training and not model[2].training and model[3].training


def test_reference_pass_is_deterministic_dropout_off():
    model = mlp_with_bn_dropout()
    data = batches()
    assert collect_statistics(model, data) == collect_statistics(model, data)


def test_fp16_activations_that_overflow_are_accumulated_in_fp64():
    acc = StatisticsAccumulator()
    a = torch.full((64, 32), 3000.0, dtype=torch.float16)  # fp16 max is 65504
    assert not torch.isfinite((a * a).sum())  # squares overflow in fp16
    assert not torch.isfinite(a.norm())  # and so does the norm itself (135,765)
    acc.update(a)
    stats = acc.result(0.0)
    assert stats.k_z == pytest.approx(3000.0 * math.sqrt(64 * 32))
    assert stats.s == pytest.approx(3000.0**2 * math.sqrt(64 * 32))


def test_nan_activations_propagate():
    acc = StatisticsAccumulator()
    acc.update(torch.ones(4, 3))
    acc.update(torch.tensor([[math.nan, 1.0, 1.0]]))
    acc.update(torch.ones(4, 3))
    assert math.isnan(acc.result(0.0).k_z)


def test_empty_loader_and_unreached_head_raise():
    model = mlp_with_bn_dropout()
    with pytest.raises(ValueError, match="yielded no batches"):
        collect_statistics(model, [])
    stats = collect_statistics(model, [], allow_empty=True)
    assert stats.k_z == 0.0 and stats.num_batches == 0

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(6, 4)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            return self.body(x)

    with pytest.raises(ValueError, match="never called during the forward pass"):
        collect_statistics(Skips(), batches())


def test_dict_batches_targets_and_custom_unpack():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(4, 3)
    y = torch.randn(4, 2) * 7
    stats = collect_statistics(model, [{"input": x, "target": y}])
    assert stats.target_norm == pytest.approx(float(y.double().norm()))
    assert stats.output_norm == pytest.approx(float(model(x).detach().double().norm()), rel=1e-6)
    stats2 = collect_statistics(model, [("ignored", x)], unpack_batch=lambda b: (b[1], None))
    assert stats2.k_z == pytest.approx(stats.k_z)
    for inputs_key, targets_key in (("x", "y"), ("inputs", "labels"), ("input", "label"), ("x", "targets")):
        other = collect_statistics(model, [{inputs_key: x, targets_key: y}])
        assert (other.k_z, other.target_norm) == (stats.k_z, stats.target_norm), (inputs_key, targets_key)
    with pytest.raises(ValueError, match=r"a dict batch with keys \['labels'\] holds no inputs"):
        collect_statistics(model, [{"labels": y}])


def test_integer_targets_count_for_the_target_norm():
    """Integer count targets regressed with MSE left target_norm at 0 (lr 0.745 instead of 0.0185)."""
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))
    counts = torch.tensor([[3], [0], [4], [12]])
    stats = collect_statistics(model, [(torch.randn(4, 3), counts)])
    assert stats.target_norm == pytest.approx(13.0)


class KeywordModel(nn.Module):
    """A model called with keyword inputs, as a Hugging Face model is (``input_ids``, ``attention_mask``)."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask):
        hidden = (self.embed(input_ids) * attention_mask.unsqueeze(-1)).sum(1)
        return self.head(hidden)


def test_keyword_inputs_several_inputs_and_the_models_dtype():
    torch.manual_seed(0)
    model = KeywordModel()
    ids, mask = torch.randint(0, 10, (3, 5)), torch.ones(3, 5)
    stats = collect_statistics(model, [{"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}])
    with torch.no_grad():
        expected = (model.embed(ids) * mask.unsqueeze(-1)).sum(1)
    assert stats.k_z == pytest.approx(float(expected.double().norm()), rel=1e-6) and stats.batch_rows == 3
    positional = collect_statistics(model, [((ids, mask), None)], call=lambda m, xs: m(*xs))
    assert positional.k_z == pytest.approx(stats.k_z)
    double = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()  # float32 batches cast to it
    assert collect_statistics(double, [torch.randn(4, 3)]).k_z > 0


def test_the_batch_statistics_pass_leaves_batchnorm_as_it_found_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.randn(6, 5), None), (torch.randn(1, 5), None)]  # the last batch: one row
    batch = collect_statistics(model, data, batchnorm="batch")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # running stats, counter
    assert model.training and model[1].training and model[3].training  # every flag restored
    running = collect_statistics(model, data, batchnorm="running")
    with torch.no_grad():  # the six-row batch, normalised by its own mean and biased variance
        hidden = model[0](data[0][0])
        normalised = (hidden - hidden.mean(0)) / torch.sqrt(hidden.var(0, unbiased=False) + 1e-5)
        by_batch = torch.relu(normalised * model[1].weight + model[1].bias)
    assert batch.k_z == pytest.approx(max(float(by_batch.norm()), _one_row_norm(model, data[1][0])), rel=1e-5)
    assert batch.k_z != pytest.approx(running.k_z)
    with pytest.raises(ValueError, match="unknown batchnorm 'train'"):
        collect_statistics(model, data, batchnorm="train")


def _one_row_norm(model, x):
    """A one-row batch cannot be normalised by itself: the running statistics (eval mode) are used."""
    model.eval()
    try:
        with torch.no_grad():
            return float(model[2](model[1](model[0](x))).norm())
    finally:
        model.train()
