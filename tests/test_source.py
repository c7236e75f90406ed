"""lipschitz_lr.source: where the statistics come from (the loader, the head, the rows per batch)."""

import math
import warnings

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR, collect_statistics
from tests.adaptive_helpers import K_CLASSES, PAPER, _build, make_data, make_model, train_epoch


def test_hook_mode_without_loader_needs_initial_lr():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, None, num_classes=K_CLASSES, statistics="hook", initial_lr=0.3, batch_size=8)
    assert opt.param_groups[0]["lr"] == 0.3 and math.isnan(sched.history[0].k_z)
    train_epoch(model, opt, make_data())
    sched.step()
    assert sched.history[1].k_z > 0 and sched.history[1].note == ""


def test_error_empty_loader():
    with pytest.raises(ValueError, match="loader yielded no batches"):
        _build(loader=[])


def test_error_model_without_linear():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU())
    with pytest.raises(ValueError, match="has no nn.Linear"):
        _build(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_error_head_never_reached():
    class WithUnusedLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = make_model()
            self.unused = nn.Linear(4, 4)  # the last nn.Linear, but never called

        def forward(self, x):
            return self.body(x)

    model = WithUnusedLayer()  # the forward pass finds the real head; registration order would not
    assert _build(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))._head is model.body[4]
    with pytest.raises(ValueError, match="never called during the forward pass"):
        _build(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), head="unused")


def test_the_head_is_the_output_layer_of_the_forward_pass_and_named(caplog):
    """A head declared first in __init__: registration order picked an inner Linear (BCE lr 2.25 vs 5.39)."""

    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(16, K_CLASSES)
            self.body = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())

        def forward(self, x):
            return self.classifier(self.body(x))

    torch.manual_seed(0)
    model = HeadFirst()
    with caplog.at_level("INFO", logger="lipschitz_lr"):
        sched = _build(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert sched._head is model.classifier
    assert "AdaptiveLR head: classifier = Linear(in_features=16, out_features=4" in caplog.text
    assert "the output layer of a forward pass" in caplog.text


def test_a_convolution_as_head_is_refused_and_token_heads_count_every_token():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, K_CLASSES, 3), nn.Flatten(), nn.Linear(4, 2))
    data = [(torch.randn(2, 1, 5, 5), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"the head \(Conv2d, kernel \(3, 3\)\) is a convolution.*1x1 convolution"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES, head="2")
    tagger = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, K_CLASSES))  # per token: (batch, tokens, 5)
    tokens = [(torch.randn(3, 7, 5), torch.zeros(3, 7, dtype=torch.long))]
    sched = AdaptiveLR(torch.optim.SGD(tagger.parameters(), lr=0.1), tagger, tokens, num_classes=K_CLASSES, **PAPER)
    assert collect_statistics(tagger, tokens).batch_rows == 3 * 7  # m: every (batch, token) row
    k_z = sched.history[0].k_z
    assert sched.history[0].lr == pytest.approx(1 / ((K_CLASSES - 1) / (K_CLASSES * 21) * k_z), rel=1e-6)


@pytest.mark.parametrize("size", [1, 6])
def test_a_1x1_convolution_head_counts_each_pixel_as_a_row(size):
    """squeezenet's classifier on a 1x1 map (32x32 images), a segmentation head on a map: a 1x1 convolution is a
    linear layer applied per pixel, so each pixel is a row of m, as a per-token head's tokens are."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(size), nn.Conv2d(8, 3, 1))
    images = torch.randn(4, 1, 6, 6)
    data = [(images, torch.zeros(4, size, size, dtype=torch.long))]
    sched = AdaptiveLR(
        torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3, head="3", batch_size=4 * size * size,
        **PAPER,
    )  # fmt: skip
    with torch.no_grad():
        features = model[:3](images)  # (4, 8, size, size): 4 * size * size rows of 8 features
    assert sched.history[0].k_z == pytest.approx(float(torch.linalg.norm(features.double())), rel=1e-6)
    rows = 4 * size * size
    assert collect_statistics(model, data, head="3").batch_rows == rows
    assert sched.history[0].lr == pytest.approx(1 / (2 / (3 * rows) * sched.history[0].k_z), rel=1e-6)


def test_a_pooled_token_head_counts_only_the_rows_that_enter_the_loss():
    """GPT-2's classifier runs on every token and its loss takes the last: head_rows='last' counts those alone
    (over every row, K_z was sqrt(tokens) times too large and m counted tokens, with a misleading rows warning)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, K_CLASSES))
    tokens = torch.randn(3, 16, 5)
    data = [(tokens, torch.zeros(3, dtype=torch.long))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = AdaptiveLR(
            torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES, batch_size=3,
            head_rows="last", **PAPER,
        )  # fmt: skip
    with torch.no_grad():
        last = model[:2](tokens)[:, -1]
    assert sched.history[0].k_z == pytest.approx(float(torch.linalg.norm(last.double())), rel=1e-6)
    assert sched.history[0].lr == pytest.approx(1 / ((K_CLASSES - 1) / (K_CLASSES * 3) * sched.history[0].k_z))


def test_batches_of_other_than_m_rows_warn_with_the_values():
    model = make_model()
    small = [(torch.randn(16, 6), torch.randint(0, K_CLASSES, (16,))) for _ in range(3)]
    with pytest.warns(RuntimeWarning, match=r"had 16 rows, but batch_size \(m\) is 256"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, small, num_classes=K_CLASSES, batch_size=256)


def test_a_shuffling_statistics_loader_warns():
    model = make_model()
    dataset = torch.utils.data.TensorDataset(torch.randn(32, 6), torch.randint(0, K_CLASSES, (32,)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True)
    with pytest.warns(UserWarning, match="the statistics loader \\(DataLoader\\) shuffles"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, loader, num_classes=K_CLASSES)


def test_num_classes_must_match_the_heads_outputs():
    model = make_model()
    with pytest.raises(ValueError, match=r"num_classes=1000 but the head '4' \(Linear\(.*\)\) has 4 outputs.*head="):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, make_data(), num_classes=1000)


def test_a_dataset_gives_the_same_statistics_as_its_in_order_loader():
    xs, ys = torch.randn(37, 6), torch.randint(0, K_CLASSES, (37,))
    dataset = torch.utils.data.TensorDataset(xs, ys)
    loader = [(xs[i : i + 8], ys[i : i + 8]) for i in range(0, 37, 8)]
    rates = []
    for source in ({"dataset": dataset}, {"loader": loader}):
        model = make_model(seed=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = AdaptiveLR(opt, model, num_classes=K_CLASSES, batch_size=8, **source)
        rates.append((sched.history[0].k_z, sched.history[0].lr))
    assert rates[0] == rates[1]
    with pytest.raises(ValueError, match="requires batch_size"):
        AdaptiveLR(opt, model, dataset=dataset, num_classes=K_CLASSES)
    with pytest.raises(ValueError, match="a loader or a dataset, not both"):
        AdaptiveLR(opt, model, loader, dataset=dataset, num_classes=K_CLASSES, batch_size=8)


def test_statistics_batches_reads_a_fixed_leading_subset():
    data = make_data(n_batches=6, m=8, last=8)
    model = make_model(seed=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    subset = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics_batches=2)
    full = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES)
    first_two = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data[:2], num_classes=K_CLASSES)
    assert subset.history[0].k_z == first_two.history[0].k_z <= full.history[0].k_z
    assert subset.state_dict()["statistics_batches"] == 2
    with pytest.raises(ValueError, match="statistics_batches=0"):
        AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics_batches=0)


def test_an_iterator_as_loader_is_refused_and_any_random_sampler_warns():
    model = make_model()
    with pytest.raises(ValueError, match=r"the statistics loader is an iterator \(generator\)"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, (b for b in make_data()), num_classes=K_CLASSES)
    dataset = torch.utils.data.TensorDataset(torch.randn(16, 6), torch.randint(0, K_CLASSES, (16,)))
    sampler = torch.utils.data.SubsetRandomSampler(range(16))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=sampler)
    with pytest.warns(UserWarning, match="shuffles"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, loader, num_classes=K_CLASSES)


def test_hook_mode_with_a_head_in_eval_mode_says_why():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, statistics="hook")
    model.train()
    model[4].eval()  # a frozen head (a linear probe's)
    for x, y in make_data():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with pytest.raises(ValueError, match="The head is in eval mode, and the hook records only training-mode passes"):
        sched.step()


def test_a_per_token_head_fed_by_a_data_loader_counts_tokens_without_a_warning():
    """A time-major or batch-major token head: m read off the loader is examples; the rows are examples x tokens."""
    tagger = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, K_CLASSES))
    dataset = torch.utils.data.TensorDataset(torch.randn(6, 7, 5), torch.zeros(6, 7, dtype=torch.long))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = AdaptiveLR(torch.optim.SGD(tagger.parameters(), lr=0.1), tagger, loader, num_classes=K_CLASSES, **PAPER)
    k_z = sched.history[0].k_z
    assert sched.history[0].lr == pytest.approx(1 / ((K_CLASSES - 1) / (K_CLASSES * 21) * k_z), rel=1e-6)
