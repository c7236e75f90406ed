import copy
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR, EpochRecord, collect_statistics

K_CLASSES = 4
#: The paper's rule, unguarded: the tests of its formulas (the library's defaults add the curvature rule and the
#: safeguards, tested on their own).
PAPER = {"rule": "paper", "max_growth": None, "backoff": None}


def make_model(seed=0, d_in=6, hidden=16):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(0.3), nn.Linear(hidden, K_CLASSES)
    )
    with torch.no_grad():
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[2].running_var.uniform_(0.5, 2.0)
        model[2].weight.uniform_(0.5, 1.5)
        model[2].bias.uniform_(-0.5, 0.5)
    return model


def make_data(n_batches=4, m=8, last=5, d_in=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [m] * (n_batches - 1) + [last]
    return [(torch.randn(s, d_in, generator=g) * 2, torch.randint(0, K_CLASSES, (s,), generator=g)) for s in sizes]


def train_epoch(model, optimizer, data):
    model.train()
    for x, y in data:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


# --------------------------------------------------------------------------- numpy reference
def numpy_statistics(model, data, batchnorm="batch"):
    """Loop over batches in numpy: the forward of Linear-ReLU-BN-(Dropout off)-[head], BN normalising by each
    batch's own mean and (biased) variance (``"batch"``; a one-row batch by the running ones) or by the
    running ones (``"running"``, the eval pass)."""
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    k_z = s = 0.0
    for x, _ in data:
        h = np.maximum(x.double().numpy() @ sd["0.weight"].T + sd["0.bias"], 0.0)
        mean, var = sd["2.running_mean"], sd["2.running_var"]
        if batchnorm == "batch" and h.shape[0] > 1:
            mean, var = h.mean(axis=0), h.var(axis=0)
        a = (h - mean) / np.sqrt(var + 1e-5) * sd["2.weight"] + sd["2.bias"]
        k_z = max(k_z, math.sqrt(float((a**2).sum())))
        s = max(s, math.sqrt(float((a**4).sum())))
    max_wt = max(math.sqrt(float((v**2).sum())) for k, v in sd.items() if "num_batches" not in k)
    return k_z, s, max_wt


def numpy_lrs(
    stats, variant, m, lam, x=None, beta1=0.9, beta2=None, eps=1e-7, bias_correction=False, momentum_seed="value"
):
    beta2 = beta2 if beta2 is not None else (0.9 if variant == "rmsprop" else 0.999)
    c = (K_CLASSES - 1) / (K_CLASSES * m)
    k1 = k2 = 0.0
    n = 0
    lrs = []
    for epoch, (k_z, s, wt) in enumerate(stats):
        big_k = c * k_z + lam * wt
        big_s = c * c * s + 2 * lam * wt * c * k_z
        if epoch == 0 and x is not None:
            if variant == "momentum":
                k1 = x if momentum_seed == "value" else 1 / x  # the authors' code: `K1 = x; return x`
            lrs.append(x)
            continue
        n += 1
        k1 = beta1 * k1 + (1 - beta1) * big_k
        k2 = beta2 * k2 + (1 - beta2) * big_s
        if variant == "sgd":
            lrs.append(1 / big_k)
        elif variant == "momentum":
            lrs.append(1 / k1)
        else:
            hat1, hat2 = k1, k2
            if bias_correction:
                hat1, hat2 = k1 / (1 - beta1**n), k2 / (1 - beta2**n)
            lrs.append((math.sqrt(hat2) + eps) / (k_z if variant == "rmsprop" else hat1))
    return lrs


@pytest.mark.parametrize(
    ("variant", "options"),
    [
        ("sgd", {}),
        ("sgd", {"weight_decay": 1e-2}),
        ("momentum", {"weight_decay": 1e-3}),
        ("momentum", {"initial_lr": 0.5}),
        ("momentum", {"initial_lr": 0.5, "momentum_seed": "reciprocal"}),
        ("rmsprop", {"weight_decay": 1e-3}),
        ("adam", {"weight_decay": 1e-4}),
        ("adam", {"bias_correction": True, "weight_decay": 1e-3}),
        ("adam", {"initial_lr": 0.01}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("batchnorm", ["batch", "running"])
@pytest.mark.filterwarnings("ignore:variant=:UserWarning")  # every variant's formula, driven through plain SGD
def test_library_matches_numpy_reference(variant, options, seed, batchnorm):
    model = make_model(seed)
    model.train()
    data = make_data(seed=seed)
    if variant == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = [numpy_statistics(model, data, batchnorm)]
    sched = AdaptiveLR(
        opt, model, data, num_classes=K_CLASSES, variant=variant, batchnorm=batchnorm, **options, **PAPER
    )
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    for epoch in range(1, 5):
        perturb(model, seed=100 * seed + epoch)
        stats.append(numpy_statistics(model, data, batchnorm))
        opt.step()
        sched.step()
    expected = numpy_lrs(
        stats,
        variant,
        m=8,
        lam=options.get("weight_decay", 0.0),
        x=options.get("initial_lr"),
        bias_correction=options.get("bias_correction", False),
        momentum_seed=options.get("momentum_seed", "value"),
    )
    got = [record.method_lr for record in sched.history]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose([r.k_z for r in sched.history], [s[0] for s in stats], rtol=1e-6)
    np.testing.assert_allclose([r.max_weight_norm for r in sched.history], [s[2] for s in stats], rtol=1e-6)
    # The real value sits in the optimizer and in get_last_lr().
    assert opt.param_groups[0]["lr"] == pytest.approx(expected[-1], rel=1e-6)
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
    assert model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in running.items())  # the passes left them alone


@pytest.mark.parametrize(("variant", "lam"), [("sgd", 0.0), ("sgd", 1e-2), ("momentum", 1e-3)])
def test_the_curvature_rule_matches_numpy(variant, lam):
    """``rule="smooth"``: 1/L with L = K_z^2/(2m) + lambda (sgd), AdaMo's bias-corrected EMA of L (momentum);
    unguarded here."""
    model = make_model(3)
    data = make_data(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9 if variant == "momentum" else 0)
    if variant == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(
        opt, model, data, num_classes=K_CLASSES, variant=variant, weight_decay=lam, rule="smooth", max_growth=None,
        backoff=None,
    )  # fmt: skip
    stats = [numpy_statistics(model, data)]
    for epoch in range(1, 4):
        perturb(model, seed=epoch)
        stats.append(numpy_statistics(model, data))
        opt.step()
        sched.step()
    k1, expected = 0.0, []
    for n, (k_z, _, _) in enumerate(stats, start=1):
        curvature = 0.5 * k_z**2 / 8 + lam
        k1 = 0.9 * k1 + 0.1 * curvature
        expected.append(1 / curvature if variant == "sgd" else (1 - 0.9**n) / k1)  # the EMA bias-corrected
    np.testing.assert_allclose([r.method_lr for r in sched.history], expected, rtol=1e-6)
    np.testing.assert_allclose([r.curvature for r in sched.history], [0.5 * s[0] ** 2 / 8 + lam for s in stats], 1e-6)


def test_epoch_zero_uses_initial_weights_and_history_fields():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    k_z, _, wt = numpy_statistics(model, data)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, weight_decay=1e-3, **PAPER)
    record = sched.history[0]
    assert isinstance(record, EpochRecord) and record.epoch == 0 and record.note == ""
    expected_k = 3 / 32 * k_z + 1e-3 * wt
    assert record.k == pytest.approx(expected_k, rel=1e-6)  # fp32 model vs fp64 numpy
    assert record.lr == opt.param_groups[0]["lr"] == pytest.approx(1 / expected_k, rel=1e-6)  # fp32 model vs fp64 numpy


@pytest.mark.filterwarnings("ignore:variant='momentum' with Adam:UserWarning")  # the non-SGD mapping is 1
def test_momentum_mapping_to_torch_heavy_ball_and_unseeded_start():
    model = make_model()
    data = make_data()
    k_z, _, _ = numpy_statistics(model, data)
    big_k = 3 / 32 * k_z
    heavy = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = AdaptiveLR(heavy, model, data, num_classes=K_CLASSES, variant="momentum", **PAPER)
    # Unseeded: K1 = 0.1 K, so the method's LR is 10/K; heavy-ball needs (1 - 0.9) of it.
    assert sched.history[0].method_lr == pytest.approx(10 / big_k, rel=1e-6)  # fp32 model vs fp64 numpy
    assert heavy.param_groups[0]["lr"] == pytest.approx(1 / big_k, rel=1e-6)  # fp32 model vs fp64 numpy
    ema = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    sched = AdaptiveLR(ema, model, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.5)
    assert ema.param_groups[0]["lr"] == 0.5 and sched.history[0].note == "initial_lr"
    adam = torch.optim.Adam(model.parameters(), lr=0.1)
    AdaptiveLR(adam, model, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.5)
    assert adam.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="momentum > 0, got momentum=0.0"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=K_CLASSES, variant="momentum")


def test_momentum_seed_value_is_the_authors_k1_equals_x():
    """MNIST Momentum.ipynb: `if epoch == 0: K1 = 0.1; return 0.1`, then `K1 = 0.9 K1 + 0.1 K_`, `lr = 1/K1`."""
    data = make_data()
    lrs = {}
    for seed in ("value", "reciprocal"):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
        sched = AdaptiveLR(
            opt, model, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.1, momentum_seed=seed, **PAPER
        )
        opt.step()  # no gradients: the weights stay, so epoch 1 sees the initial statistics
        sched.step()
        assert sched.state_dict()["momentum_seed"] == seed
        lrs[seed] = [r.method_lr for r in sched.history]
    big_k = 3 / 32 * numpy_statistics(make_model(), data)[0]
    assert lrs["value"][0] == lrs["reciprocal"][0] == 0.1
    assert lrs["value"][1] == pytest.approx(1 / (0.9 * 0.1 + 0.1 * big_k), rel=1e-6)
    assert lrs["reciprocal"][1] == pytest.approx(1 / (0.9 / 0.1 + 0.1 * big_k), rel=1e-6)
    with pytest.raises(ValueError, match="momentum_seed 'inverse'"):
        AdaptiveLR(
            torch.optim.SGD(make_model().parameters(), lr=0.1, momentum=0.9),
            make_model(),
            data,
            num_classes=K_CLASSES,
            variant="momentum",
            momentum_seed="inverse",
        )


def test_sgd_variant_with_momentum_optimizer_warns():
    model = make_model()
    with pytest.warns(UserWarning, match="use variant='momentum'"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), model, make_data(), num_classes=4)


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


def test_param_groups_keep_their_ratio_and_clamps_apply_per_group():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.2},
            {"params": model[2].parameters(), "lr": 0.05},
            {"params": model[4].parameters(), "lr": 0.0},
        ],
        lr=0.1,
    )
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, max_lr=[10.0, 0.01, 1.0])
    lr = sched.history[0].method_lr
    assert lr / 4 > 0.01  # so the clamp on group 1 bites
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, 0.01, 0.0])
    assert sched.history[0].note == "clamped"
    sched2 = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=4, min_lr=100.0)
    assert sched2.get_last_lr() == [100.0]


@pytest.mark.parametrize("poison", ["zero", "nan", "inf"])
def test_guard_keeps_previous_lr_on_zero_nan_inf(poison):
    model = make_model()
    data = make_data()
    if poison == "zero":
        with torch.no_grad():  # every head input is 0: K_z = 0, K = 0, 1/K = inf
            model[2].weight.zero_()
            model[2].bias.zero_()
    else:
        value = math.nan if poison == "nan" else math.inf
        data[1][0][0, 0] = value
    variant = "momentum" if poison == "nan" else "sgd"
    momentum = 0.9 if variant == "momentum" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=momentum, dampening=momentum)
    with pytest.warns(RuntimeWarning, match="not finite and positive; keeping the previous"):
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, variant=variant)
    assert sched.history[0].note == "guarded"
    assert sched.optimizer.param_groups[0]["lr"] == 0.123
    if poison == "nan":
        # NaN did not enter the EMA: a clean epoch gives a finite LR.
        data[1][0][0, 0] = 0.0
        sched.optimizer.step()
        sched.step()
        assert math.isfinite(sched.history[1].lr) and sched.history[1].note == ""


def test_state_dict_round_trip_into_differently_configured_instance():
    data = make_data()
    model_a = make_model(seed=3)
    opt_a = torch.optim.SGD(model_a.parameters(), lr=0.1, momentum=0.9)
    kwargs = {"num_classes": K_CLASSES, "variant": "momentum", "weight_decay": 1e-3, "keras_decay": True}
    sched_a = AdaptiveLR(opt_a, model_a, data, **kwargs)
    for _ in range(2):
        train_epoch(model_a, opt_a, data)
        sched_a.step()
    state = sched_a.state_dict()

    # Plain values only: no model, loader, hook handle or tensor; loadable with weights_only.
    json.dumps(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    model_b = make_model(seed=99)
    model_b.load_state_dict(model_a.state_dict())
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.7, momentum=0.9)
    sched_b = AdaptiveLR(
        opt_b, model_b, data[:2], num_classes=K_CLASSES, variant="momentum", weight_decay=0.5, beta1=0.5, min_lr=1e-9
    )
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # else momentum buffers alias
    with pytest.warns(UserWarning, match="weight_decay 0.5 -> 0.001; beta1 0.5 -> 0.9"):
        sched_b.load_state_dict(state)
    sched_b._loader = data  # same data source (the loader is not part of the state)
    assert sched_b.history == sched_a.history
    for epoch in range(2):
        torch.manual_seed(epoch)  # same dropout masks for both
        train_epoch(model_a, opt_a, data)
        sched_a.step()
        torch.manual_seed(epoch)
        train_epoch(model_b, opt_b, data)
        sched_b.step()
    assert [r.lr for r in sched_b.history] == pytest.approx([r.lr for r in sched_a.history], rel=1e-12)
    assert opt_b.param_groups[0]["lr"] == pytest.approx(opt_a.param_groups[0]["lr"], rel=1e-12)


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


def test_hook_mode_without_loader_needs_initial_lr():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, None, num_classes=K_CLASSES, statistics="hook", initial_lr=0.3, batch_size=8)
    assert opt.param_groups[0]["lr"] == 0.3 and math.isnan(sched.history[0].k_z)
    train_epoch(model, opt, make_data())
    sched.step()
    assert sched.history[1].k_z > 0 and sched.history[1].note == ""


# --------------------------------------------------------------------------- bad input, one test each
def _build(**overrides):
    model = overrides.pop("model", None) or make_model()
    opt = overrides.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    loader = overrides.pop("loader", make_data())
    kwargs = {"num_classes": K_CLASSES, **overrides}
    return AdaptiveLR(opt, model, loader, **kwargs)


def test_error_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        _build(loss="hinge")


def test_error_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant 'nesterov'"):
        _build(variant="nesterov")


def test_error_missing_num_classes_for_cross_entropy():
    with pytest.raises(ValueError, match="requires num_classes, got num_classes=None"):
        _build(num_classes=None)


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


def test_error_negative_lambda():
    with pytest.raises(ValueError, match="weight_decay=-0.001"):
        _build(weight_decay=-1e-3)


def test_error_nan_lambda():
    with pytest.raises(ValueError, match="weight_decay=nan"):
        _build(weight_decay=math.nan)


@pytest.mark.parametrize("seed", [0.0, -0.5])
def test_error_non_positive_epoch0_seed(seed):
    with pytest.raises(ValueError, match=f"initial_lr={seed}"):
        _build(initial_lr=seed)


def test_error_min_lr_above_max_lr():
    with pytest.raises(ValueError, match="min_lr=0.5 > max_lr=0.1"):
        _build(min_lr=0.5, max_lr=0.1)


def test_error_per_group_list_of_wrong_length():
    with pytest.raises(ValueError, match="max_lr has 2 values but the optimizer has 1 param groups"):
        _build(max_lr=[1.0, 2.0])


@pytest.mark.filterwarnings("ignore:variant='adam' with SGD:UserWarning")
def test_error_loading_state_of_another_variant():
    adam = _build(variant="adam")
    with pytest.raises(ValueError, match="variant 'adam' into an AdaptiveLR of variant 'sgd'"):
        _build().load_state_dict(adam.state_dict())


def test_error_step_with_epoch_argument():
    with pytest.raises(ValueError, match="takes no epoch"):
        _build().step(3)


def test_no_warnings_in_normal_use():
    model = make_model()
    data = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES)
        train_epoch(model, opt, data)
        sched.step()


# --------------------------------------------------------------------------- what the scheduler checks
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


def test_an_optimizer_of_another_family_than_the_variant_warns():
    model = make_model()
    with pytest.warns(UserWarning, match="variant='sgd' with Adam.*use variant='adam'"):
        AdaptiveLR(torch.optim.Adam(model.parameters(), lr=0.1), model, make_data(), num_classes=K_CLASSES)


def _trained(variant="momentum", epochs=2):
    data = make_data()
    model = make_model(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, variant=variant, initial_lr=0.1)
    for _ in range(epochs):
        train_epoch(model, opt, data)
        sched.step()
    return data, model, opt, sched


def test_load_state_dict_writes_the_restored_lr_in_the_common_resume_order():
    data, model_a, opt_a, sched_a = _trained()
    checkpoint = {"model": model_a.state_dict(), "opt": opt_a.state_dict(), "sched": sched_a.state_dict()}
    model_b = make_model(seed=7)
    model_b.load_state_dict(checkpoint["model"])
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    opt_b.load_state_dict(copy.deepcopy(checkpoint["opt"]))
    sched_b = AdaptiveLR(opt_b, model_b, data, num_classes=K_CLASSES, variant="momentum", initial_lr=0.1)
    assert opt_b.param_groups[0]["lr"] == 0.1  # construction wrote its own epoch-0 rate
    sched_b.load_state_dict(checkpoint["sched"])
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"] == sched_a.history[-1].lr
    assert sched_b.get_last_lr() == sched_a.get_last_lr()


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("weight_decay", -1.0, "weight_decay=-1.0"),
        ("num_classes", "4", "num_classes='4'"),
        ("batch_size", 0, "batch_size=0"),
        ("beta1", 1.5, "beta1=1.5"),
        ("_last_lr", [math.nan], "_last_lr=nan"),
        ("_k1", -2.0, "_k1=-2.0"),
        ("_epoch_lrs", [0.1, 0.2], r"state_dict\['_epoch_lrs'\] must be a list of 1"),
        ("history", [{"epoch": 0}], "EpochRecord fields"),
    ],
)
def test_load_state_dict_rejects_invalid_values_naming_them(key, value, named):
    _, _, _, sched = _trained()
    state = {**sched.state_dict(), key: value}
    with pytest.raises(ValueError, match=named):
        sched.load_state_dict(state)


def test_load_state_dict_warns_about_each_replaced_setting():
    _, _, _, sched = _trained()
    state = {**sched.state_dict(), "weight_decay": 1e-3, "batch_size": 4}
    with pytest.warns(UserWarning, match="weight_decay 0.0 -> 0.001; batch_size None -> 4"):
        sched.load_state_dict(state)
    assert (sched.weight_decay, sched.batch_size) == (1e-3, 4)


def test_remove_hooks_in_hook_mode_then_step_raises():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, statistics="hook")
    sched.remove_hooks()
    train_epoch(model, opt, make_data())
    with pytest.raises(RuntimeError, match="remove_hooks\\(\\) detached the forward hook"):
        sched.step()


def test_zero_k_z_keeps_the_previous_lr_even_with_weight_decay():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, K_CLASSES))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # every ReLU dead: the head's inputs are all zero
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="K_z=0.0"):
        sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, weight_decay=1e-3)
    assert sched.history[0].note == "guarded" and opt.param_groups[0]["lr"] == 0.1  # not 1/(lambda K_w)


def test_hook_statistics_survive_a_mid_epoch_checkpoint():
    data = make_data()

    def fresh():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, K_CLASSES))
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    model, opt = fresh()
    whole = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    with torch.no_grad():
        for x, _ in data:
            model(x)
    opt.step()
    whole.step()

    model, opt = fresh()
    first = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    with torch.no_grad():
        for x, _ in data[:2]:
            model(x)
    state = first.state_dict()
    json.dumps(state)  # plain values
    first.remove_hooks()
    resumed = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook")
    resumed.load_state_dict(state)
    with torch.no_grad():
        for x, _ in data[2:]:
            model(x)
    opt.step()
    resumed.step()
    assert resumed.history[1].k_z == whole.history[1].k_z and resumed.history[1].lr == whole.history[1].lr


def test_numpy_scalars_are_stored_as_plain_values():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(
        opt, model, make_data(), num_classes=np.int64(K_CLASSES), weight_decay=np.float64(1e-3), batch_size=np.int32(8)
    )
    assert type(sched.num_classes) is int and type(sched.batch_size) is int and type(sched.weight_decay) is float
    quantile = AdaptiveLR(
        torch.optim.SGD(model.parameters(), lr=0.1), model, make_data(), loss="quantile", tau=np.float32(0.9)
    )
    assert type(quantile.tau) is float
    for state in (sched.state_dict(), quantile.state_dict()):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)  # a numpy scalar in the state made this fail


def test_get_lr_has_no_side_effects_and_warns_outside_step():
    """torch guards get_lr against calls outside step(); ours must not run a pass or advance the EMAs."""
    _, _, opt, sched = _trained()
    before = (len(sched.history), sched._k1, sched._k2, sched._num_updates, opt.param_groups[0]["lr"])
    with pytest.warns(UserWarning, match="get_last_lr"):
        values = sched.get_lr()
    assert values == sched.get_last_lr()
    assert (len(sched.history), sched._k1, sched._k2, sched._num_updates, opt.param_groups[0]["lr"]) == before


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


def _hook_run(finder_batches=0, steps_per_period=None):
    """Hook mode on a small model: optionally an LR-finder-like loop first (another optimizer on the
    same model, weights restored afterwards, as torch-lr-finder's reset()), then one epoch."""
    data = make_data(n_batches=6, m=8, last=8)
    model = make_model(seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook", batch_size=8, **PAPER)
    norms: list[float] = []  # the norm of each training batch's head input, as the scheduler's hook saw it
    model[-1].register_forward_hook(lambda m, inputs, out: norms.append(float(inputs[0].detach().double().norm())))
    if finder_batches:
        saved = copy.deepcopy(model.state_dict())
        finder_opt = torch.optim.SGD(model.parameters(), lr=10.0)  # large steps: large activations
        model.train()
        for x, y in (data * 3)[:finder_batches]:
            finder_opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            finder_opt.step()
        model.load_state_dict(saved)
    norms.clear()
    torch.manual_seed(5)  # the same dropout masks in the epoch whatever ran before
    model.train()
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if steps_per_period and (i + 1) % steps_per_period == 0:
            sched.step()
    if not steps_per_period:
        sched.step()
    return sched, norms


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


def test_load_state_dict_refuses_another_num_classes():
    """A state saved for a 4-class head is refused by a scheduler of a 3-class head (it only warned, then wrote
    another model's rate)."""
    data = make_data()
    sched = AdaptiveLR(torch.optim.SGD(make_model().parameters(), lr=0.1), make_model(), data, num_classes=K_CLASSES)
    state = sched.state_dict()
    other = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    three = AdaptiveLR(torch.optim.SGD(other.parameters(), lr=0.1), other, [(x, y % 3) for x, y in data], num_classes=3)
    before = three.optimizer.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"saved with num_classes=4 into an AdaptiveLR with num_classes=3"):
        three.load_state_dict(state)
    assert three.optimizer.param_groups[0]["lr"] == before


def test_a_model_on_the_meta_device_and_an_optimizer_without_groups_are_refused():
    with torch.device("meta"):
        meta = make_model()
    with pytest.raises(ValueError, match=r"on the meta device .*model\.to_empty"):
        AdaptiveLR(torch.optim.SGD(meta.parameters(), lr=0.1), meta, make_data(), num_classes=K_CLASSES)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.param_groups.clear()
    with pytest.raises(ValueError, match="at least one param group, got SGD with none"):
        AdaptiveLR(optimizer, model, make_data(), num_classes=K_CLASSES)


def test_param_groups_added_after_construction_take_their_ratio():
    """Gradual unfreezing: optimizer.add_param_group crashed step() ("zip() argument 2 is shorter")."""
    model = make_model()
    opt = torch.optim.SGD(list(model[0].parameters()), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, weight_decay=1e-3, keras_decay=True)
    train_epoch(model, opt, make_data())
    opt.add_param_group({"params": list(model[4].parameters()), "lr": 0.05})
    train_epoch(model, opt, make_data())  # the Keras decay's step hook meets the new group first
    sched.step()
    first, added = (group["lr"] for group in opt.param_groups)
    assert added == pytest.approx(first / 2) and len(sched.state_dict()["base_lrs"]) == 2


def test_one_clamp_value_keeps_the_groups_ratios():
    model = make_model()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1}, {"params": model[4].parameters(), "lr": 0.01}])
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, max_lr=1e-3)
    assert sched.history[0].note == "clamped"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])


def test_an_iterator_as_loader_is_refused_and_any_random_sampler_warns():
    model = make_model()
    with pytest.raises(ValueError, match=r"the statistics loader is an iterator \(generator\)"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, (b for b in make_data()), num_classes=K_CLASSES)
    dataset = torch.utils.data.TensorDataset(torch.randn(16, 6), torch.randint(0, K_CLASSES, (16,)))
    sampler = torch.utils.data.SubsetRandomSampler(range(16))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=sampler)
    with pytest.warns(UserWarning, match="shuffles"):
        AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, loader, num_classes=K_CLASSES)


def test_reference_steps_after_every_optimizer_step_warn_once():
    """Lightning's interval='step' ran a full pass per batch without a word."""
    model = make_model()
    data = make_data(n_batches=8, last=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES)
    with pytest.warns(UserWarning, match=r"after one optimizer step, .*8 batches\): call it once per epoch"):
        for x, y in data[:3]:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    assert sched._warned_per_batch


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


def _composite_setup():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES)


def test_sequential_and_chained_schedulers_are_refused_pointing_to_warmup():
    """SequentialLR warmed up to the nominal lr, then jumped to a stale 1/K; ChainedScheduler ignored the warm-up
    or multiplied 1/K (training blew up)."""
    sched = torch.optim.lr_scheduler
    model, opt, adaptive = _composite_setup()
    with pytest.raises(ValueError, match=r"not composable with SequentialLR or ChainedScheduler; .*warmup_steps"):
        sched.SequentialLR(opt, [adaptive, sched.LinearLR(opt, 0.1, total_iters=2)], milestones=[2])

    model, opt, adaptive = _composite_setup()
    linear = sched.LinearLR(opt, 0.1, total_iters=2)
    sched.SequentialLR(opt, [linear, adaptive], milestones=[2])
    with pytest.raises(ValueError, match=r"holds .* at this optimizer step: another scheduler.*warmup_steps"):
        train_epoch(model, opt, make_data())

    for order in ("adaptive first", "adaptive last"):
        model, opt, adaptive = _composite_setup()
        linear = sched.LinearLR(opt, 0.1, total_iters=2)
        chained = sched.ChainedScheduler([adaptive, linear] if order == "adaptive first" else [linear, adaptive])
        with pytest.raises(ValueError, match="another scheduler or the training code changed it"):
            train_epoch(model, opt, make_data())
            chained.step()
            train_epoch(model, opt, make_data())


def test_warmup_over_epochs_counts_the_loaders_batches():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, warmup_epochs=2)  # 4 batches an epoch
    assert sched.warmup_epochs == 2 and sched.resolved.warmup_steps == 8
    assert opt.param_groups[0]["lr"] == pytest.approx(sched.history[0].lr / 8)
    with pytest.raises(ValueError, match="give warmup_steps or warmup_epochs, not both"):
        AdaptiveLR(opt, model, make_data(), num_classes=K_CLASSES, warmup_epochs=2, warmup_steps=3)


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
