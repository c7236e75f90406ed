"""The epoch loop: one optimizer step, one training epoch, and the evaluation of a split.

The benchmarks time :func:`train_step` itself, so what they measure is what the trainer runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: TensorBatches, amp: str = "off", limit: int = 50) -> bool:
    """Refresh BatchNorm's running statistics at the model's current weights: forward passes in train
    mode over the first ``limit`` batches (previous mode restored). Returns whether the model has BatchNorm.

    Schedule-Free's README asks for this before evaluating at its averaged weights (the running
    statistics were gathered at the training weights); the harness does it for every optimiser whose
    ``eval()`` puts other weights in the model (:func:`lipschitz_lr_experiments.optimizers.switch`).
    """
    if not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return False
    was_training = model.training
    model.train()
    for step, (x, _) in enumerate(batches):
        if step == limit:
            break
        with autocast(x.device, amp):
            model(x)
    model.train(was_training)
    return True
