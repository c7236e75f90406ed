"""The epoch loop: one optimizer step, one training epoch, and the evaluation of a split.

One training step, in the order it happens (:func:`train_step`, then :func:`train_epoch`):

1. ``optimizer.zero_grad()``; the forward pass under autocast; the loss; ``backward()`` (scaled under fp16).
2. ``scaler.step(optimizer)``: the optimizer's step, unless fp16's GradScaler found an inf or NaN gradient
   and skips it. The optimizer's own step hooks run inside it (AdaptiveLR's: its warm-up and Keras decay factor
   before, its hook statistics after).
3. ``scaler.update()``; then, only for a step taken, ``after_step()``: the trainer's weight average and
   the schedule's ``step_update`` (a per-step schedule, LipschitzLR's ``update_every``), so a per-step schedule
   sees the step's statistics already gathered and counts the steps AdaptiveLR's hooks count.

The benchmarks time :func:`train_step` itself, so what they measure is what the trainer runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lipschitz_lr.models import batchnorm_layers, eval_mode

from .data import TensorBatches
from .devices import autocast
from .losses import LossFn


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    loss_fn: LossFn = F.cross_entropy,
    takes_loss: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One optimizer step; returns (loss, logits, taken). ``loss_fn(logits, targets)`` is a training loss
    of :data:`lipschitz_lr_experiments.losses.LOSSES`; ``takes_loss``: ``optimizer.step(loss=loss)``
    (MoMo, whose step size needs the batch's loss). ``taken`` is False for a step fp16's GradScaler skipped
    (its scale fell: it halves the scale exactly when it skips; reading the scale syncs, under fp16 only)."""
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    scaler.scale(loss).backward()
    scale = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer, **({"loss": loss.detach()} if takes_loss else {}))
    scaler.update()
    return loss, logits, scale is None or scaler.get_scale() >= scale


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batches: TensorBatches,
    *,
    amp: str = "off",
    channels_last: bool = False,
    loss_fn: LossFn = F.cross_entropy,
    takes_loss: bool = False,
    after_step: Callable[[], None] | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[float, float, int]:
    """Train one epoch over ``batches``; returns (summed loss, number correct, examples) of this process.

    ``after_step()`` runs after every optimizer step taken, once the step and the scaler's update are done
    (the module's step 3): not after a step that fp16's GradScaler skipped for an inf or NaN gradient, so a
    per-step schedule counts the same steps as AdaptiveLR's Keras decay (an optimizer step hook) does.
    ``progress(step, mean_loss, accuracy)`` is called every 10 steps and at the last (it reads device values:
    a sync).
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.images.device)
    correct = torch.zeros((), dtype=torch.long, device=batches.images.device)
    seen = 0
    last = len(batches) - 1
    for step, (x, y) in enumerate(batches):
        loss, logits, taken = train_step(model, optimizer, scaler, x, y, amp, channels_last, loss_fn, takes_loss)
        if taken and after_step is not None:
            after_step()
        loss_sum += loss.detach().double() * y.shape[0]
        correct += (logits.argmax(dim=1) == y).sum()
        seen += y.shape[0]
        if progress is not None and (step % 10 == 0 or step == last):
            progress(step, float(loss_sum) / seen, float(correct) / seen)
    return float(loss_sum), float(correct), seen


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, amp: str = "off", loss_fn: LossFn = F.cross_entropy
) -> tuple[float, float]:
    """Mean loss (``loss_fn``, the training loss) and accuracy over a split, in eval mode (previous mode restored)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for x, y in TensorBatches(images, labels, 1000):
        with autocast(images.device, amp):
            logits = model(x)
        loss_sum += loss_fn(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(dim=1) == y).sum()
    model.train(was_training)
    n = labels.shape[0]
    return float(loss_sum) / n, float(correct) / n


#: How many training batches BatchNorm is recalibrated over when a config does not say (``bn_recalibration``).
RECALIBRATION_BATCHES = 50


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: TensorBatches, amp: str = "off", limit: int = 50) -> bool:
    """Recompute BatchNorm's running statistics at the model's current weights. Returns whether it has BatchNorm.

    Each BatchNorm layer's statistics are reset and replaced by their plain average over the first ``limit``
    batches (``momentum=None``, as ``torch.optim.swa_utils.update_bn``), with only the BatchNorm layers in
    train mode: dropout stays off, so they are the statistics of the network that is evaluated, and no random
    number is drawn. Every module's mode and every layer's momentum are restored. The old statistics are not
    kept: wrap the call in :func:`kept_batchnorm_statistics` to evaluate with these and then train on.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return False
    momenta = [layer.momentum for layer in layers]
    with eval_mode(model):
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
            layer.train()
        try:
            for step, (x, _) in enumerate(batches):
                if step == limit:
                    break
                with autocast(x.device, amp):
                    model(x)
        finally:
            for layer, momentum in zip(layers, momenta, strict=True):
                layer.momentum = momentum
    return True


@contextlib.contextmanager
def kept_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """Inside, BatchNorm's running statistics may change (:func:`recalibrate_batchnorm`); afterwards they are
    those of before, so evaluating at recalibrated statistics changes nothing in training (LipschitzLR's
    reference pass reads the running statistics)."""
    saved = [
        {name: buffer.clone() for name, buffer in layer.named_buffers(recurse=False)}
        for layer in batchnorm_layers(model)
    ]
    try:
        yield
    finally:
        for layer, buffers in zip(batchnorm_layers(model), saved, strict=True):
            for name, value in buffers.items():
                getattr(layer, name).copy_(value)


def evaluate_protocol(
    trained: nn.Module,
    evaluated: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recalibration: TensorBatches,
    limit: int,
    amp: str = "off",
    loss_fn: LossFn = F.cross_entropy,
) -> dict[str, float]:
    """Test loss and accuracy two ways: ``*_as_trained``, the ``trained`` network with BatchNorm's running
    statistics as training left them (the paper's evaluation), and ``test_*``, the ``evaluated`` network (the
    trained one, or an average of its weights) with BatchNorm recalibrated over the first ``limit`` batches of
    ``recalibration`` (none for ``limit=0``; then the same values where ``evaluated`` is ``trained``). BatchNorm's
    statistics are put back afterwards (:func:`kept_batchnorm_statistics`)."""
    loss, accuracy = evaluate(trained, images, labels, amp, loss_fn)
    row = {"test_loss": loss, "test_acc": accuracy, "test_loss_as_trained": loss, "test_acc_as_trained": accuracy}
    if not limit and evaluated is trained:
        return row  # before copying any statistics: the paper's evaluation costs one pass
    with kept_batchnorm_statistics(evaluated):
        recalibrated = bool(limit) and recalibrate_batchnorm(evaluated, recalibration, amp, limit)
        if recalibrated or evaluated is not trained:
            row["test_loss"], row["test_acc"] = evaluate(evaluated, images, labels, amp, loss_fn)
    return row
