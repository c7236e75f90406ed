"""The safeguards on AdaptiveLR's rate (lipschitz_lr/safeguards.py) and the curvature rule, through the scheduler:
a growth limit, a back-off after a divergence, a warning on a 10x jump, the training loss the pass measures, and
the paper's settings that turn them all off."""

import math
import warnings

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.bounds import smoothness_bound
from lipschitz_lr.safeguards import pass_loss

PAPER = {"rule": "paper", "max_growth": None, "backoff": None}


def linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def batches(seed=0, n=3, m=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(m, 6, generator=g), torch.randint(0, 3, (m,), generator=g)) for _ in range(n)]


def scaled_step(model, scheduler, factor):
    """Scale the head's inputs by ``factor`` (the first layer's weights and bias), then ``scheduler.step()``."""
    with torch.no_grad():
        model[0].weight.mul_(factor)
        model[0].bias.mul_(factor)
    scheduler.optimizer.step()
    scheduler.step()
    return scheduler.history[-1]


def test_the_defaults_are_the_curvature_rule_with_its_safeguards():
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=10.0), model, data, num_classes=3)
    assert (scheduler.rule, scheduler.options.resolved_rule, scheduler.max_growth, scheduler.backoff) == (
        None,
        "smooth",
        1.5,
        0.5,
    )
    record = scheduler.history[0]
    with torch.no_grad():
        k_z = max(float(torch.linalg.norm(model[:2](x).double())) for x, _ in data)
    assert record.k_z == pytest.approx(k_z, rel=1e-6)
    assert record.curvature == pytest.approx(0.5 * k_z**2 / 8, rel=1e-6)  # h = 1/2 for softmax cross-entropy
    assert record.lr == record.rule_lr == pytest.approx(1 / record.curvature, rel=1e-12)
    assert record.loss is not None and math.isfinite(record.loss)  # the pass measured the training loss


def test_the_first_rate_grows_from_the_optimizers_own():
    """SGD(lr=0.1): the first rate is at most 1.5 x 0.1, whatever the rule says (a tiny transformer's head gave 9)."""
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3)
    record = scheduler.history[0]
    assert record.rule_lr > 0.5 and record.lr == pytest.approx(0.15) and record.note == "limited"
    seeded = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3, initial_lr=0.7)
    assert seeded.history[0].lr == 0.7  # initial_lr sets epoch 0 as given


def test_growth_stops_while_the_loss_does_not_fall():
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3)
    with torch.no_grad():
        model[2].weight.mul_(-3.0)  # a worse network: the pass loss rises 1.2x (measured), K_z unchanged
    scheduler.optimizer.step()
    scheduler.step()
    first, second = scheduler.history
    assert first.loss < second.loss < 1.5 * first.loss
    assert second.lr == pytest.approx(first.lr) and second.note == "limited"  # held, not grown


def test_growth_is_limited_and_a_tenfold_drop_is_warned_about():
    """Head inputs that shrink 10x raise the curvature rule's rate 100x: the limit lets it grow 1.5x; inputs that
    grow 10x drop it 100x, which is written with a warning naming K_z (the back-off, which the changed loss would
    trigger, is off here; so is the loss, which the pass then does not measure)."""
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=10.0), model, data, num_classes=3, backoff=None)
    first = scheduler.history[0].lr
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a limited rise
        limited = scaled_step(model, scheduler, 0.1)
    assert limited.note == "limited" and limited.lr == pytest.approx(1.5 * first)
    assert limited.rule_lr > 50 * first
    with pytest.warns(RuntimeWarning, match=r"moved from .* 10x or more in one update \(K_z=.*grew\)"):
        dropped = scaled_step(model, scheduler, 100.0)
    assert dropped.lr == pytest.approx(dropped.rule_lr) and dropped.lr < limited.lr / 10


def test_the_papers_settings_have_no_safeguards():
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3, **PAPER)
    first = scheduler.history[0]
    assert first.lr == pytest.approx(1 / first.k) and first.curvature is None and first.loss is None
    with pytest.warns(RuntimeWarning, match="10x or more"):  # the warning stays: it changes nothing
        record = scaled_step(model, scheduler, 0.05)
    assert record.note == "" and record.lr == pytest.approx(20 * first.lr, rel=1e-3)


def test_a_non_finite_loss_backs_the_rate_off_instead_of_keeping_it():
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3)
    before = scheduler.history[0].lr
    with pytest.warns(RuntimeWarning, match=r"statistics are not finite .* backs off from .* \(backoff=0.5\)"):
        record = scaled_step(model, scheduler, math.nan)
    assert record.note == "backed off" and record.lr == pytest.approx(before / 2)
    assert scheduler.optimizer.param_groups[0]["lr"] == record.lr
    other = linear_model()
    paper = AdaptiveLR(torch.optim.SGD(other.parameters(), lr=0.1), other, data, num_classes=3, **PAPER)
    kept = paper.history[0].lr
    with pytest.warns(RuntimeWarning, match="keeping the previous learning rates"):
        record = scaled_step(other, paper, math.nan)
    assert record.note == "guarded" and record.lr == kept  # the paper's: the rate that diverged is kept


def test_a_sharply_rising_loss_backs_the_rate_off():
    """The pass loss against the last update's: 1.5x or more is a divergence (measured, not guessed: the head's
    weights scaled up make a confident, wrong network)."""
    model, data = linear_model(), batches()
    scheduler = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, data, num_classes=3)
    with torch.no_grad():
        model[2].weight.mul_(-40.0)
    loss = torch.stack([nn.functional.cross_entropy(model(x), y) for x, y in data]).mean()
    assert float(loss.detach()) > 1.5 * scheduler.history[0].loss
    with pytest.warns(RuntimeWarning, match=r"the training loss rose from .* to .*backs off"):
        scheduler.optimizer.step()
        scheduler.step()
    record = scheduler.history[-1]
    assert record.note == "backed off" and record.lr == pytest.approx(scheduler.history[0].lr / 2)
    assert record.loss == pytest.approx(float(loss), rel=1e-5)


def test_the_curvature_rule_is_for_smooth_losses_and_the_1_over_k_variants():
    model, data = linear_model(), batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="rule='smooth' needs a smooth loss, got loss='mae'"):
        AdaptiveLR(optimizer, model, data, loss="mae", rule="smooth")
    with pytest.raises(ValueError, match="rule='smooth' applies to variant 'sgd' or 'momentum'"):
        AdaptiveLR(torch.optim.Adam(model.parameters()), model, data, num_classes=3, variant="adam", rule="smooth")
    assert AdaptiveLR(optimizer, model, data, loss="mae").options.resolved_rule == "paper"
    with pytest.raises(ValueError, match=r"requires 1 < max_growth < inf .*got max_growth=0.5"):
        AdaptiveLR(optimizer, model, data, num_classes=3, max_growth=0.5)
    with pytest.raises(ValueError, match=r"requires 0 < backoff < 1 .*got backoff=1"):
        AdaptiveLR(optimizer, model, data, num_classes=3, backoff=1)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_the_curvature_bound_holds_for_the_hessian_of_a_real_batch(loss):
    """The largest eigenvalue of the batch loss's Hessian in the head's weights, computed by autograd, is at most
    ``h K_z^2/m`` (here at a random point, where it is also not far below)."""
    torch.manual_seed(1)
    m, features, outputs = 12, 5, 4 if loss == "cross_entropy" else 1
    a = torch.randn(m, features, dtype=torch.float64) * 3
    target = {
        "cross_entropy": torch.randint(0, outputs, (m,)),
        "binary_cross_entropy": torch.randint(0, 2, (m, 1)).double(),
        "mse": torch.randn(m, 1, dtype=torch.float64),
    }[loss]
    weights = torch.randn(outputs * features, dtype=torch.float64) * 0.3

    def batch_loss(w):
        z = a @ w.reshape(outputs, features).T
        if loss == "cross_entropy":
            return nn.functional.cross_entropy(z, target)
        if loss == "binary_cross_entropy":
            return nn.functional.binary_cross_entropy_with_logits(z, target)
        return 0.5 * ((z - target) ** 2).sum() / m

    hessian = torch.autograd.functional.hessian(batch_loss, weights)
    largest = float(torch.linalg.eigvalsh(hessian).max())
    bound = smoothness_bound(loss, float(torch.linalg.norm(a)), m)
    assert largest <= bound * (1 + 1e-9)
    assert largest >= bound / 40  # a bound, not a guess: the same order here


def test_pass_loss_reads_the_models_output_and_gives_up_where_it_does_not_fit():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert float(pass_loss("cross_entropy", logits, torch.tensor([0, 1]))) == pytest.approx(
        float(nn.functional.cross_entropy(logits, torch.tensor([0, 1])))
    )
    assert pass_loss("cross_entropy", torch.zeros(2, 3, 4), torch.tensor([0, 1])) is None  # (batch, tokens, C)
    assert float(pass_loss("quantile", torch.zeros(2, 1), torch.ones(2, 1), tau=0.9)) == pytest.approx(0.9)
    assert float(pass_loss("mse", torch.zeros(2, 1), torch.ones(2))) == pytest.approx(0.5)


def test_divergence_names_its_cause_and_safeguarded_applies_backoff_then_growth():
    from lipschitz_lr import Options
    from lipschitz_lr.safeguards import divergence, safeguarded

    assert divergence(float("nan"), 1.0, 1.0, k_z=0.0) == "the statistics are not finite or zero (K_z=0.0)"
    assert divergence(2.0, float("inf"), 1.0) == "the training loss is not finite"
    assert divergence(2.0, 1.6, float("nan")) == ""  # no earlier loss: nothing rose
    options = Options(num_classes=2)  # max_growth 1.5, backoff 0.5
    rate, note, warning = safeguarded(4.0, "", 1.0, 0.1, "the training loss is not finite", 9.0, 1.0, options)
    assert (rate, note) == (0.5, "backed off") and "backs off from 1 to 0.5 (backoff=0.5)" in warning
    assert safeguarded(4.0, "", None, 0.1, "a cause", 0.5, 1.0, options)[:2] == (pytest.approx(0.15), "limited")
    assert safeguarded(4.0, "", 1.0, None, "", 1.2, 1.0, options)[:2] == (1.0, "limited")  # the loss did not fall
    assert safeguarded(4.0, "", None, None, "", 0.5, 1.0, options)[:2] == (4.0, "")  # nothing to grow from
    paper = options.replace(max_growth=None, backoff=None)
    assert safeguarded(4.0, "", 1.0, 0.1, "a cause", 9.0, 1.0, paper) == (4.0, "", "")
