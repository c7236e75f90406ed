"""The epoch loop: one optimizer step, one training epoch, and the evaluation of a split.

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
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; returns (loss, logits). ``loss_fn(logits, targets)`` is a training loss
    of :data:`lipschitz_lr_experiments.losses.LOSSES`; ``takes_loss``: ``optimizer.step(loss=loss)``
    (MoMo, whose step size needs the batch's loss)."""
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer, **({"loss": loss.detach()} if takes_loss else {}))
    scaler.update()
    return loss, logits


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

    ``after_step()`` runs after every optimizer step taken (a per-step schedule): not after a step that
    fp16's GradScaler skipped for an inf or NaN gradient, so a per-step schedule counts the same steps as
    AdaptiveLR's Keras decay (an optimizer step hook) does. ``progress(step, mean_loss, accuracy)`` is
    called every 10 steps and at the last (it reads device values: a sync).
    """
    # on the optimizer's own step: a step the GradScaler skips never calls optimizer.step(), nor this
    handle = optimizer.register_step_post_hook(lambda *_: after_step()) if after_step is not None else None
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.images.device)
    correct = torch.zeros((), dtype=torch.long, device=batches.images.device)
    seen = 0
    last = len(batches) - 1
    try:
        for step, (x, y) in enumerate(batches):
            loss, logits = train_step(model, optimizer, scaler, x, y, amp, channels_last, loss_fn, takes_loss)
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
            if progress is not None and (step % 10 == 0 or step == last):
                progress(step, float(loss_sum) / seen, float(correct) / seen)
    finally:
        if handle is not None:
            handle.remove()
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
