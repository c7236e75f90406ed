import pytest
import torch
from torch import nn

from lipschitz_lr_experiments.data import TensorBatches
from lipschitz_lr_experiments.loop import evaluate, train_epoch, train_step


def setup(seed=0, n=40):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images, labels = torch.randn(n, 1, 3, 4), torch.randint(0, 3, (n,))
    return model, images, labels


def test_train_step_is_one_sgd_step_on_the_loss():
    model, images, labels = setup()
    expected = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(images), labels)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    returned, logits, taken = train_step(model, optimizer, scaler, images, labels)
    assert float(returned.detach()) == pytest.approx(float(loss.detach())) and logits.shape == (40, 3) and taken
    for p, before, g in zip(model.parameters(), expected, grads, strict=True):
        torch.testing.assert_close(p.detach(), before - 0.5 * g)


def test_train_epoch_counts_every_example_and_runs_the_per_step_hook():
    model, images, labels = setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # no update: the sums are the model's
    steps, seen_progress = [], []
    loss_sum, correct, seen = train_epoch(
        model,
        optimizer,
        torch.amp.GradScaler("cpu", enabled=False),
        TensorBatches(images, labels, 16),
        after_step=lambda: steps.append(1),
        progress=lambda step, loss, acc: seen_progress.append(step),
    )
    assert seen == 40 and len(steps) == 3 and seen_progress == [0, 2]
    with torch.no_grad():
        logits = model(images)
    assert loss_sum == pytest.approx(float(nn.functional.cross_entropy(logits, labels, reduction="sum")), rel=1e-5)
    assert correct == float((logits.argmax(1) == labels).sum())


def test_evaluate_is_in_eval_mode_and_restores_the_mode():
    model, images, labels = setup()
    model.append(nn.Dropout(0.9))
    model.train()
    loss, accuracy = evaluate(model, images, labels, loss_fn=nn.functional.cross_entropy)
    assert model.training
    with torch.no_grad():
        logits = model.eval()(images)
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, labels)), rel=1e-6)
    assert accuracy == pytest.approx(float((logits.argmax(1) == labels).float().mean()))


def test_a_step_the_grad_scaler_skips_does_not_advance_a_per_step_schedule():
    """fp16: a step skipped for an inf gradient must not count, as it does not for AdaptiveLR's Keras decay."""
    model, images, labels = setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def loss_fn(logits, targets, reduction="mean"):
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, targets, reduction=reduction)
        return loss * float("inf") if len(calls) == 2 else loss  # the second batch overflows

    steps = []
    train_epoch(
        model,
        optimizer,
        torch.amp.GradScaler("cpu", enabled=True),
        TensorBatches(images, labels, 16),
        loss_fn=loss_fn,
        after_step=lambda: steps.append(1),
    )
    assert len(calls) == 3 and len(steps) == 2
    assert not optimizer._optimizer_step_post_hooks  # the loop counts the steps itself: it installs no hook


def test_after_step_runs_after_the_optimizers_own_step_hooks_whenever_they_were_registered():
    """A per-step schedule (LipschitzLR's update_every) needs the statistics its hook gathered in the step: the
    loop calls after_step once the step (and every optimizer hook, registered before or during the epoch) is done."""
    model, images, labels = setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    order = []
    optimizer.register_step_post_hook(lambda *_: order.append("hook"))

    def after_step():
        order.append("after")
        if len(order) == 2:  # a hook registered mid-epoch runs before after_step too
            optimizer.register_step_post_hook(lambda *_: order.append("late hook"))

    train_epoch(
        model, optimizer, torch.amp.GradScaler("cpu", enabled=False), TensorBatches(images, labels, 16),
        after_step=after_step,
    )  # fmt: skip
    assert order == ["hook", "after", "hook", "late hook", "after", "hook", "late hook", "after"]
