"""The one training entry point: a config in, a history, checkpoints and a summary out.

Every epoch writes ``history.json``/``history.csv`` and ``checkpoint.pt`` atomically (a temporary
file, then ``os.replace``), so a killed run loses at most the epoch in flight and ``resume=True``
continues it. On CPU with a fixed seed a resumed run ends with exactly the history of an
uninterrupted one: the checkpoint carries the RNG states of dropout and of the data order and
augmentation. What a run directory may hold, what is refused and the lock are
:mod:`experiments.run_dir`'s rules.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lipschitz_lr import AdaptiveLR

from .config import ExperimentConfig
from .data import DataSplits, TensorBatches, load_dataset
from .distributed import init_distributed
from .losses import LossFn, build_loss
from .models import build_model
from .optimizers import build_optimizer, is_schedule_free
from .run_dir import RunDirectory, atomic_torch_save, atomic_write_bytes
from .schedules import build_schedule, keras_decay_schedule

logger = logging.getLogger(__name__)

HISTORY_FIELDS = (
    "epoch",
    "lr",
    "k_z",
    "max_weight_norm",
    "k",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
)
AMP_MODES = ("off", "bf16", "fp16")


@dataclass
class RunOptions:
    """How to run a config (where, on what, with which extras); not part of the experiment."""

    out_dir: Path
    data_dir: Path | None = None
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    amp: str = "off"
    download: bool = False
    progress: bool = True
    tensorboard: bool = True
    channels_last: bool = False
    compile: bool = False
    command: str = field(default_factory=lambda: " ".join(sys.argv))
    # Test hook: called after each completed epoch with the epoch number (1-based).
    on_epoch_end: Callable[[int], None] | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for, but CUDA is not available on this machine")
    return resolved


def describe_device(device: torch.device) -> str:
    """A device in words: the GPU's name, or the CPU's model name and thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"cpu: {name} ({threads} thread{'' if threads == 1 else 's'})"


def write_history(out_dir: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_bytes(out_dir / "history.json", json.dumps(history, indent=1).encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(out_dir / "history.csv", text.getvalue().encode())


def autocast(device: torch.device, amp: str) -> Any:
    """The autocast context for ``amp`` (``off``, ``bf16``, ``fp16``) on ``device``."""
    if amp == "off":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    loss_fn: LossFn = F.cross_entropy,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of the experiments' training loop; returns (loss, logits).

    ``loss_fn(logits, targets)`` is one of :data:`experiments.losses.LOSSES`. The benchmarks time
    this same step, so what they measure is what the trainer runs.
    """
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, logits


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


class Trainer:
    """Builds everything a config needs and runs its epochs."""

    def __init__(self, config: ExperimentConfig, options: RunOptions, data: DataSplits | None = None) -> None:
        if options.amp not in AMP_MODES:
            raise ValueError(f"unknown amp {options.amp!r}; expected one of {', '.join(AMP_MODES)}")
        self.config = config
        self.options = options
        self.dist, device = init_distributed(options.device)
        self.device = resolve_device(device)
        self.out_dir = Path(options.out_dir)
        self.run_dir = RunDirectory(self.out_dir)
        if self.dist.is_main:  # fail fast, before the data and the first statistics pass; run() checks again
            self.run_dir.prepare(resume=options.resume, overwrite=options.overwrite)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.generator = torch.Generator().manual_seed(config.seed + 1000 * self.dist.rank)
        self.data = data or load_dataset(
            config.dataset,
            options.data_dir,
            device=self.device,
            download=options.download,
            train_subset=config.train_subset,
            test_subset=config.test_subset,
        )
        self.net = build_model(config.model, self.data.num_classes, keras_faithful=config.keras_faithful)
        self.loss_fn = build_loss(config.loss)
        self.net.to(self.device)
        if options.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.net
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=device_ids)
            torch.manual_seed(config.seed + 1000 * self.dist.rank)  # each rank its own dropout masks
        if options.compile:
            # Compiles the training forward; the statistics pass and evaluation use the module as is.
            self.model = torch.compile(self.model)
        train_images, train_labels = self.dist.shard(self.data.train_images), self.dist.shard(self.data.train_labels)
        self.train_loader = TensorBatches(
            train_images,
            train_labels,
            config.batch_size,
            shuffle=True,
            augmentation=self.data.augmentation if config.augment else None,
            generator=self.generator,
        )
        # The statistics pass sees the clean training set (this rank's shard), in order, at the training batch size.
        self.clean_loader = TensorBatches(train_images, train_labels, config.batch_size)
        lipschitz = config.schedule == "lipschitz"
        self.optimizer = build_optimizer(config.optimizer, self.model, config.lr, l2=config.l2, ema_momentum=lipschitz)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.amp == "fp16")
        self.adaptive: AdaptiveLR | None = None
        self.schedule: Any = None
        self.interval = "epoch"
        if lipschitz:
            self.adaptive = AdaptiveLR(
                self.optimizer,
                self.model,
                self.clean_loader,
                loss="cross_entropy",
                num_classes=self.data.num_classes,
                variant=config.optimizer,
                weight_decay=config.weight_decay,
                statistics=config.statistics,
                batch_size=config.batch_size,
                initial_lr=config.initial_lr,
                momentum_seed=config.momentum_seed,
                keras_decay=config.keras_decay,
                bias_correction=config.bias_correction,
            )
        elif config.schedule == "constant":
            if config.keras_decay and config.weight_decay > 0:
                self.schedule, self.interval = keras_decay_schedule(self.optimizer, config.weight_decay), "step"
        else:
            self.schedule, self.interval = build_schedule(
                config.schedule, self.optimizer, config.schedule_args, len(self.train_loader), config.epochs, config.lr
            )
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.writer: Any = None  # TensorBoard, opened by run() once the run directory is checked

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir.checkpoint

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "config": self.config.to_dict(),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "adaptive": self.adaptive.state_dict() if self.adaptive else None,
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "lrs": self.adaptive_lrs,
            **self._rng(),
        }

    def load(self, path: Path) -> None:
        state = self.run_dir.load(path, map_location=self.device)
        saved, current = state["config"], self.config.to_dict()
        differing = sorted(k for k in saved if k != "epochs" and saved.get(k) != current.get(k))
        if differing:
            raise ValueError(f"cannot resume {path}: the config differs in {', '.join(differing)}")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.adaptive is not None:
            self.adaptive.load_state_dict(state["adaptive"])
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = state["history"]
        rng = state if self.dist.is_main else self.run_dir.load(self._rank_path(), map_location="cpu")
        if rng["epoch"] != state["epoch"]:
            raise ValueError(
                f"cannot resume: {self._rank_path()} is from epoch {rng['epoch']}, {path} from epoch {state['epoch']}"
            )
        self._set_rng(rng)
        self.start_epoch = state["epoch"]
        logger.info("resumed %s after epoch %d", path, self.start_epoch)

    @property
    def adaptive_lrs(self) -> list[float]:
        """The learning rates LipschitzLR wrote so far (epoch 0 first); empty for other schedules."""
        return [record.lr for record in self.adaptive.history] if self.adaptive else []

    def _rng(self) -> dict[str, Any]:
        return {
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "rng_data": self.generator.get_state(),
        }

    def _set_rng(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.generator.set_state(state["rng_data"].cpu())

    def _rank_path(self) -> Path:
        return self.run_dir.rank_file(self.dist.rank)

    def save(self, epoch: int) -> None:
        """Rank 0 writes the checkpoint; under torchrun every other rank writes its RNG states and LRs."""
        if self.dist.is_main:
            atomic_torch_save(self.state(epoch), self.checkpoint_path)
        elif self.dist.enabled:
            atomic_torch_save({**self._rng(), "epoch": epoch, "lrs": self.adaptive_lrs}, self._rank_path())
        self.dist.barrier()

    # ----------------------------------------------------------------- training
    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed; skipping TensorBoard logging")
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        from tqdm import tqdm

        self.model.train()
        if is_schedule_free(self.optimizer):
            self.optimizer.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        k = self.adaptive.history[-1].k if self.adaptive else math.nan
        bar = tqdm(
            self.train_loader,
            desc=f"{self.config.name} {epoch + 1}/{self.config.epochs}",
            # None: tqdm turns itself off when stderr is not a terminal (logs, CI); rank 0 only
            disable=None if self.options.progress and self.dist.is_main else True,
            leave=False,
            dynamic_ncols=True,
        )
        for step, (x, y) in enumerate(bar):
            loss, logits = train_step(
                self.model,
                self.optimizer,
                self.scaler,
                x,
                y,
                self.options.amp,
                self.options.channels_last,
                self.loss_fn,
            )
            if self.schedule is not None and self.interval == "step":
                self.schedule.step()
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
            seen += y.shape[0]
            # The postfix reads device values (a sync): only when the bar is really shown.
            if not bar.disable and (step % 10 == 0 or step == len(self.train_loader) - 1):
                postfix = {
                    "loss": f"{float(loss_sum) / seen:.4f}",
                    "acc": f"{float(correct) / seen:.4f}",
                    "lr": f"{self.optimizer.param_groups[0]['lr']:.4g}",
                }
                if self.adaptive is not None:
                    postfix["K"] = f"{k:.4g}"
                bar.set_postfix(postfix)
        loss_total, correct_total, seen_total = self.dist.sum([float(loss_sum), float(correct), seen], self.device)
        return loss_total / seen_total, correct_total / seen_total

    def run(self) -> list[dict[str, Any]]:
        """Train every remaining epoch. The run directory is checked first (see :mod:`experiments.run_dir`)
        and locked while the run writes; the lock, TensorBoard and the process group are released
        however the run ends (finished, an exception, Ctrl-C)."""
        lock = self.run_dir.lock() if self.dist.is_main else nullcontext()
        try:
            with lock:
                if self.dist.is_main:  # under the lock: the authoritative check
                    has_checkpoint = self.run_dir.prepare(resume=self.options.resume, overwrite=self.options.overwrite)
                else:
                    has_checkpoint = self.options.resume and self.checkpoint_path.exists()
                if has_checkpoint:
                    self.load(self.checkpoint_path)
                if self.options.tensorboard and self.dist.is_main:
                    self.writer = self._tensorboard()
                if self.dist.is_main:
                    atomic_write_bytes(
                        self.out_dir / "config.json", json.dumps(self.config.to_dict(), indent=1).encode()
                    )
                for epoch in range(self.start_epoch, self.config.epochs):
                    self._run_epoch(epoch)
                if self.dist.is_main:
                    self._write_summary()
        finally:
            if self.writer is not None:
                self.writer.close()
            self.dist.close()
        return self.history

    def _run_epoch(self, epoch: int) -> None:
        started = time.perf_counter()
        lr = self._epoch_lr()
        record = self.adaptive.history[-1] if self.adaptive else None
        train_loss, train_acc = self.train_epoch(epoch)
        if is_schedule_free(self.optimizer):
            self.optimizer.eval()  # evaluate (and checkpoint) at the averaged weights
        test_loss, test_acc = evaluate(
            self.net, self.data.test_images, self.data.test_labels, self.options.amp, self.loss_fn
        )
        if self.adaptive is not None:
            self.adaptive.step()
        elif self.schedule is not None and self.interval == "epoch":
            if isinstance(self.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.schedule.step(train_loss)
            else:
                self.schedule.step()
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "k_z": record.k_z if record else None,
            "max_weight_norm": record.max_weight_norm if record else None,
            "k": record.k if record else None,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": time.perf_counter() - started,
        }
        self.history.append(row)
        self.save(epoch + 1)  # first: the checkpoint carries the history, so history.json never outruns it
        if self.dist.is_main:
            write_history(self.out_dir, self.history)
            self._log_epoch(row)
        if self.options.on_epoch_end is not None:
            self.options.on_epoch_end(epoch + 1)

    def _epoch_lr(self) -> float:
        if self.adaptive is not None:
            return self.adaptive.history[-1].lr
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_epoch(self, row: dict[str, Any]) -> None:
        k = f" K={row['k']:.4g}" if row["k"] is not None else ""
        message = (
            f"{self.config.name} epoch {row['epoch']}/{self.config.epochs}: lr={row['lr']:.4g}{k} "
            f"loss={row['train_loss']:.4f} acc={row['train_acc']:.4f} test_loss={row['test_loss']:.4f} "
            f"test_acc={row['test_acc']:.4f} ({row['seconds']:.1f}s)"
        )
        logger.info(message)
        if self.writer is not None:
            for key in ("lr", "k", "train_loss", "train_acc", "test_loss", "test_acc"):
                if row[key] is not None:
                    self.writer.add_scalar(key, row[key], row["epoch"])

    def _write_summary(self) -> None:
        best = max(self.history, key=lambda r: r["test_acc"])
        summary = {
            "name": self.config.name,
            "best_test_acc": best["test_acc"],
            "best_epoch": best["epoch"],
            "final_test_acc": self.history[-1]["test_acc"],
            "epochs": len(self.history),
            "seconds": sum(r["seconds"] for r in self.history),
            "device": describe_device(self.device) + (f" x {self.dist.world_size} ranks" if self.dist.enabled else ""),
            "torch": torch.__version__,
            "command": self.options.command,
            "config": self.config.to_dict(),
        }
        atomic_write_bytes(self.out_dir / "summary.json", json.dumps(summary, indent=1).encode())


def run_experiment(config: ExperimentConfig, options: RunOptions) -> list[dict[str, Any]]:
    """Train ``config`` as ``options`` say; returns the per-epoch history."""
    return Trainer(config, options).run()
