"""The one training entry point: a config in, a history, checkpoints and a summary out.

:class:`Trainer` builds what a config names from the registries (dataset, model, loss, optimizer,
schedule), then runs the remaining epochs; it never asks which optimizer or schedule it drives (each has its
one interface: :class:`~lipschitz_lr_experiments.optimizers.OptimizerAdapter`,
:class:`~lipschitz_lr_experiments.stepper.Stepper`). One epoch, as :meth:`Trainer._run_epoch` reads:

1. ``schedule.epoch_start()``: the epoch's rate (LipschitzLR's was computed at the end of the last epoch).
2. The training epoch (:func:`~lipschitz_lr_experiments.loop.train_epoch`); after each optimizer step taken,
   :meth:`Trainer._after_step`: the weight average, then ``schedule.step_update(n)``.
3. The evaluation, as trained and as the config evaluates (:meth:`Trainer._evaluate`).
4. ``schedule.step(epoch, train_loss)``: LipschitzLR's statistics pass and the next epoch's rate.
5. The checkpoint, then the history files, the log line and TensorBoard.

The pieces live in their own modules: checkpoints in :mod:`~lipschitz_lr_experiments.checkpointing` (files,
lock and atomic writes in :mod:`~lipschitz_lr_experiments.run_dir`), the set-up in
:mod:`~lipschitz_lr_experiments.assembly`, the step and the evaluation in :mod:`~lipschitz_lr_experiments.loop`,
what a run shows and writes in :mod:`~lipschitz_lr_experiments.report`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .assembly import run_data, training_batches, wrapped_model
from .averaging import WeightAverage
from .checkpointing import Checkpointing
from .config import ExperimentConfig
from .data import DataSplits
from .devices import check_amp, configure_determinism, resolve_device
from .distributed import init_distributed
from .history import HISTORY_FIELDS
from .loop import RECALIBRATION_BATCHES, evaluate_protocol, train_epoch
from .losses import LOSSES
from .models import build_model
from .optimizers import OPTIMIZERS, build_optimizer
from .report import log_epoch, open_tensorboard, progress_bar, summary
from .run_dir import RunDirectory
from .schedules import SCHEDULES, ScheduleContext, build_schedule
from .stepper import Stepper

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How to run a config (where, on what, with which extras); not part of the experiment."""

    out_dir: Path
    data_dir: Path | None = None
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    amp: str = "off"
    #: Download a dataset missing from the data directory (else refuse, one line).
    download: bool = True
    progress: bool = True
    tensorboard: bool = True
    channels_last: bool = False
    compile: bool = False
    #: TF32 off and deterministic algorithms (:func:`lipschitz_lr_experiments.devices.configure_determinism`).
    deterministic: bool = False
    #: cuDNN autotuning (faster for fixed shapes; excludes ``deterministic``).
    cudnn_benchmark: bool = False
    command: str = field(default_factory=lambda: " ".join(sys.argv))
    #: Called after each completed epoch (saved and logged) with its 1-based number; returning True
    #: ends the run there (the summary is written, as for a finished run).
    on_epoch_end: Callable[[int], bool | None] | None = None


class Trainer(Checkpointing):
    """Builds everything a config needs and runs its epochs (checkpoints: :class:`Checkpointing`)."""

    def __init__(self, config: ExperimentConfig, options: RunOptions, data: DataSplits | None = None) -> None:
        check_amp(options.amp)
        self.config, self.options = config, options
        configure_determinism(deterministic=options.deterministic, cudnn_benchmark=options.cudnn_benchmark)
        self.dist, device = init_distributed(options.device)
        self.device = resolve_device(device)
        self.out_dir = Path(options.out_dir)
        self.run_dir = RunDirectory(self.out_dir)
        if self.dist.is_main:  # fail fast, before the data and the first statistics pass; run() checks again,
            # under the lock, and only then deletes anything (overwrite)
            self.run_dir.check(resume=options.resume, overwrite=options.overwrite)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.generator = torch.Generator().manual_seed(config.seed + 1000 * self.dist.rank)
        self.data = run_data(
            config, self.device, options.data_dir, download=options.download, channels_last=options.channels_last,
            data=data,
        )  # fmt: skip
        self.net = build_model(config.model, self.data.num_classes, keras_faithful=config.keras_faithful)
        self.loss = LOSSES.lookup(config.loss)
        self.net.to(self.device)
        if options.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.model = wrapped_model(self.net, self.dist, self.device, compile=options.compile, seed=config.seed)
        # in_order: the clean training set (this rank's shard), in order, at the batch size: LipschitzLR's statistics
        # pass reads it, and BatchNorm is recalibrated over its first batches before an evaluation
        self.train_loader, self.in_order = training_batches(config, self.data, self.dist, self.generator)
        schedule = SCHEDULES[config.schedule]
        optimizer_spec = OPTIMIZERS[config.optimizer]
        self.optimizer = build_optimizer(  # over the bare module: its L2 groups are found through no wrapper
            config.optimizer, self.net, config.lr, kernel_l2=config.kernel_l2, ema_momentum=schedule.ema_momentum
        )
        self.adapter = optimizer_spec.adapt(self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.amp == "fp16")
        if options.amp == "fp16" and schedule.fp16_note:
            logger.warning(schedule.fp16_note)
        context = ScheduleContext(
            self.optimizer,
            len(self.train_loader),
            config.epochs,
            config.lr,
            model=self.model,
            statistics_loader=self.in_order,
            loss_bound=self.loss.bound,
            num_classes=self.data.num_classes,
            variant=optimizer_spec.variant,
            batch_size=config.batch_size,
        )
        self.schedule: Stepper = build_schedule(config.schedule, context, config.schedule_args)
        self.average = WeightAverage(self.net, config.weight_average) if config.weight_average else None
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self._updates = 0  # optimizer steps the run has taken (Stepper.step_update's num_updates)
        self.writer: Any = None  # TensorBoard, opened by run() once the run directory is checked

    # ----------------------------------------------------------------- training
    def run(self) -> list[dict[str, Any]]:
        """Train every remaining epoch (or until ``on_epoch_end`` says stop); returns the history.

        The run directory is checked first (see :mod:`lipschitz_lr_experiments.run_dir`) and locked while the
        run writes; the lock, TensorBoard and the process group are released however the run ends
        (finished, stopped, an exception, Ctrl-C).
        """
        with ExitStack() as cleanup:
            cleanup.callback(self.dist.close)
            if self.dist.is_main:
                cleanup.enter_context(self.run_dir.lock())
                # under the lock: the authoritative check
                has_checkpoint = self.run_dir.prepare(resume=self.options.resume, overwrite=self.options.overwrite)
            else:
                has_checkpoint = self.options.resume and self.run_dir.checkpoint.exists()
            if has_checkpoint:
                self.load()
            if self.dist.is_main:
                if has_checkpoint:  # the history files match the checkpoint, even if no epoch is left to train
                    self.run_dir.write_history(self.history)
                if self.options.tensorboard:
                    self.writer = open_tensorboard(self.out_dir)
                    if self.writer is not None:
                        cleanup.callback(self.writer.close)
                self.run_dir.write_json("config.json", self.config.to_dict())
            for epoch in range(self.start_epoch, self.config.epochs):
                if self._run_epoch(epoch):
                    break
            if self.dist.is_main:
                recalibration = self.recalibration_batches(self.adapter.has_modes)
                self.run_dir.write_json(
                    "summary.json",
                    summary(self.config, self.options, self.history, self.device, self.dist, recalibration),
                )
        return self.history

    def _run_epoch(self, epoch: int) -> bool:
        """Train, evaluate, step the schedule, save and log one epoch (the module's steps 1-5); returns whether
        to stop."""
        started = time.perf_counter()
        start = self.schedule.epoch_start()
        train_loss, train_acc = self._train(epoch)
        tested = self._evaluate()
        self.schedule.step(epoch + 1, train_loss)
        row = {
            **dict.fromkeys(HISTORY_FIELDS),
            **start,
            "epoch": epoch + 1,
            "lr": self.adapter.rate(start["lr"], len(self.train_loader)),  # a peer's own, as the epoch left it
            "train_loss": train_loss,
            "train_acc": train_acc,
            **tested,
            "seconds": time.perf_counter() - started,
        }
        self.history.append(row)
        self.save(epoch + 1)  # first: the checkpoint carries the history, so history.json never outruns it
        if self.dist.is_main:
            self.run_dir.write_history(self.history)
            log_epoch(self.config.name, self.config.epochs, row, self.writer)
        return bool(self.options.on_epoch_end is not None and self.options.on_epoch_end(epoch + 1))

    def _train(self, epoch: int) -> tuple[float, float]:
        """One epoch of :func:`~lipschitz_lr_experiments.loop.train_epoch` with the progress bar; returns the
        (loss, accuracy) over all ranks."""
        self.adapter.mode("train")
        desc = f"{self.config.name} {epoch + 1}/{self.config.epochs}"
        shown = lambda: {**self.adapter.shown(), **self.schedule.shown()}  # noqa: E731
        with progress_bar(len(self.train_loader), desc, self.options.progress and self.dist.is_main, shown) as bar:
            loss_sum, correct, seen = train_epoch(
                self.model,
                self.optimizer,
                self.scaler,
                self.train_loader,
                amp=self.options.amp,
                channels_last=self.options.channels_last,
                loss_fn=self.loss.fn,
                takes_loss=self.adapter.takes_loss,
                after_step=self._after_step,
                progress=bar,
            )
        loss_total, correct_total, seen_total = self.dist.sum([loss_sum, correct, seen], self.device)
        return loss_total / seen_total, correct_total / seen_total

    def _after_step(self) -> None:
        """After each optimizer step taken: the weights' average, then the schedule's ``step_update`` with the run's
        step count."""
        self._updates += 1
        if self.average is not None:
            self.average.update()
        self.schedule.step_update(self._updates)

    def recalibration_batches(self, swaps_weights: bool) -> int:
        """The batches BatchNorm is recalibrated over before each evaluation (``bn_recalibration``; unset: 50
        where the optimiser or ``weight_average`` evaluates other weights than it trains, else none)."""
        if self.config.bn_recalibration is not None:
            return self.config.bn_recalibration
        return RECALIBRATION_BATCHES if swaps_weights or self.average is not None else 0

    def _evaluate(self) -> dict[str, float]:
        """The test loss and accuracy as trained (``*_as_trained``) and as the config evaluates (``test_*``): the
        weights the run evaluates (for Schedule-Free and DoG their average, ``eval()``; with ``weight_average``
        the moving average), BatchNorm recalibrated there where :meth:`recalibration_batches` says
        (:func:`~lipschitz_lr_experiments.loop.evaluate_protocol`). The training weights and statistics are put
        back afterwards, so checkpoints hold them and training goes on as without the evaluation."""
        swapped = self.adapter.mode("eval")
        try:
            return evaluate_protocol(
                self.net,
                self.average.module if self.average is not None else self.net,
                self.data.test_images,
                self.data.test_labels,
                self.in_order,
                self.recalibration_batches(swapped),
                self.options.amp,
                self.loss.fn,
            )
        finally:
            self.adapter.mode("train")


def run_experiment(config: ExperimentConfig, options: RunOptions) -> list[dict[str, Any]]:
    """Train ``config`` as ``options`` say; returns the per-epoch history."""
    return Trainer(config, options).run()
