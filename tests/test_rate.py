"""lipschitz_lr.rate: the bounds and the variants' rules, against numpy loops written from the paper's formulas."""

import numpy as np
import pytest
import torch

from lipschitz_lr import AdaptiveLR
from tests.adaptive_helpers import K_CLASSES, PAPER, make_data, make_model, numpy_lrs, numpy_statistics, perturb


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


def _stats(k_z=2.0, s=1.5, weight=3.0, output_norm=0.0, target_norm=0.0, rows=8):
    from lipschitz_lr.statistics import LipschitzStatistics

    return LipschitzStatistics(k_z, s, output_norm, target_norm, weight, batch_rows=rows, num_batches=1)


def test_bounds_are_the_papers_formulas_and_the_curvature_ours():
    from lipschitz_lr import Options
    from lipschitz_lr.rate import bounds

    lam, m, k = 1e-2, 8, K_CLASSES
    c = (k - 1) / (k * m)
    paper = Options(num_classes=k, weight_decay=lam, rule="paper")
    big_k, big_s, curvature = bounds(paper, _stats(), m)
    assert big_k == pytest.approx(c * 2.0 + lam * 3.0) and big_s == pytest.approx(c * c * 1.5 + 2 * lam * 3.0 * c * 2.0)
    assert np.isnan(curvature)
    _, _, curvature = bounds(paper.replace(rule="smooth"), _stats(), m)
    assert curvature == pytest.approx(0.5 * 2.0**2 / m + lam)  # h K_z^2 / m + lambda, h = 1/2 for softmax CE
    for degenerate in (_stats(k_z=0.0), _stats(s=float("inf")), _stats(weight=float("nan"))):
        assert all(np.isnan(v) for v in bounds(paper, degenerate, m))


def test_rule_rate_advances_the_emas_from_zero_and_leaves_them_on_non_finite_bounds():
    from lipschitz_lr import Options
    from lipschitz_lr.rate import Emas, rule_rate

    adam = Options(num_classes=K_CLASSES, variant="adam", bias_correction=True)
    rate, note, emas = rule_rate(adam, Emas(), 1, 4.0, 9.0, 2.0)
    assert emas == pytest.approx(Emas(0.4, 0.009, 1)) and note == ""
    assert rate == pytest.approx((3.0 + 1e-7) / 4.0)  # bias-corrected: sqrt(9) over 4
    same, _, kept = rule_rate(adam, emas, 2, float("nan"), 9.0, 2.0)
    assert np.isnan(same) and kept == emas
    seeded, note, emas = rule_rate(adam.replace(initial_lr=0.01), Emas(), 0, 4.0, 9.0, 2.0)
    assert (seeded, note, emas) == (0.01, "initial_lr", Emas())
    smooth = Options(num_classes=K_CLASSES, variant="momentum")  # the default rule: smooth, bias-corrected
    assert rule_rate(smooth, Emas(), 1, 4.0, 9.0, 2.0)[0] == pytest.approx(1 / 4.0)
