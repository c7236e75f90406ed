"""The one training entry point: a config in, a history, checkpoints and a summary out.

:class:`Trainer` builds what a config names from the registries (dataset, model, loss, optimizer,
schedule), then runs the remaining epochs. The pieces live in their own modules: the run directory
(what is written, atomically; what a resume reads; the lock) in :mod:`lipschitz_lr_experiments.run_dir`, devices
and precision in :mod:`lipschitz_lr_experiments.devices`, the epoch loop in :mod:`lipschitz_lr_experiments.loop`.

On CPU with a fixed seed a resumed run ends with exactly the history of an uninterrupted one: the
checkpoint carries the RNG states of dropout and of the data order and augmentation.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lipschitz_lr import AdaptiveLR

from .averaging import WeightAverage
from .config import ExperimentConfig, upgraded
from .data import DataSplits, TensorBatches, load_dataset
from .devices import check_amp, configure_determinism, describe_device, precision_settings, resolve_device
from .distributed import init_distributed
from .errors import ConfigError
from .history import best_epoch
from .loop import RECALIBRATION_BATCHES, evaluate, kept_batchnorm_statistics, recalibrate_batchnorm, train_epoch
from .losses import LOSSES
from .models import build_model
from .optimizers import OPTIMIZERS, build_optimizer, switch
from .run_dir import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, RANK_KEYS, RunDirectory, RunDirError, check_layout, restoring
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


class Trainer:
    """Builds everything a config needs and runs its epochs."""

    def __init__(self, config: ExperimentConfig, options: RunOptions, data: DataSplits | None = None) -> None:
        check_amp(options.amp)
        self.config = config
        self.options = options
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
        self.data = data or load_dataset(
            config.dataset,
            options.data_dir,
            device=self.device,
            download=options.download,
            train_subset=config.train_subset,
            test_subset=config.test_subset,
        )
        for split, tensor in (("training images", self.data.train_images), ("test images", self.data.test_images)):
            if tensor.device != self.device:
                raise ValueError(
                    f"the {split} are on {tensor.device} but the run trains on {self.device}: load the data on the "
                    f"run's device (load_dataset(..., device={str(self.device)!r})) or pass --device {tensor.device}"
                )
        if options.channels_last and self.data.train_images.dim() == 4:  # once, not every batch: slices keep it
            self.data = dataclasses.replace(
                self.data,
                train_images=self.data.train_images.contiguous(memory_format=torch.channels_last),
                test_images=self.data.test_images.contiguous(memory_format=torch.channels_last),
            )
        self.net = build_model(config.model, self.data.num_classes, keras_faithful=config.keras_faithful)
        self.loss = LOSSES.lookup(config.loss)
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
        n_train = self.data.train_images.shape[0]
        if self.dist.enabled and n_train % self.dist.world_size:
            logger.info(
                "%d training examples over %d ranks: each rank takes %d, %d of them repeated so that every rank "
                "takes the same steps",
                n_train,
                self.dist.world_size,
                self.dist.shard_size(n_train),
                self.dist.shard_size(n_train) * self.dist.world_size - n_train,
            )
        if config.batch_size > train_images.shape[0]:
            where = f" on each of {self.dist.world_size} ranks" if self.dist.enabled else ""
            raise ConfigError(
                f"batch_size={config.batch_size} exceeds the training set ({train_images.shape[0]} examples{where}): "
                "every batch would be smaller than the batch size (LipschitzLR's m); set batch_size to at most "
                f"{train_images.shape[0]} (that many for full-batch training), or train on more examples"
            )
        self.train_loader = TensorBatches(
            train_images,
            train_labels,
            config.batch_size,
            shuffle=True,
            augmentation=self.data.augmentation if config.augment else None,
            generator=self.generator,
            drop_single=True,
        )
        if self.train_loader.examples < train_images.shape[0]:
            logger.info(
                "%d training examples at batch %d leave a last batch of one example, which BatchNorm cannot train on: "
                "each epoch trains on %d (a different one each epoch); the statistics pass reads them all",
                train_images.shape[0],
                config.batch_size,
                self.train_loader.examples,
            )
        schedule = SCHEDULES[config.schedule]
        self.optimizer = build_optimizer(  # over the bare module: its L2 groups are found through no wrapper
            config.optimizer, self.net, config.lr, kernel_l2=config.kernel_l2, ema_momentum=schedule.ema_momentum
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.amp == "fp16")
        if options.amp == "fp16" and schedule.fp16_note:
            logger.warning(schedule.fp16_note)
        self.optimizer_spec = OPTIMIZERS[config.optimizer]
        context = ScheduleContext(
            self.optimizer,
            len(self.train_loader),
            config.epochs,
            config.lr,
            model=self.model,
            # LipschitzLR's pass sees the clean training set (this rank's shard), in order, at the batch size.
            statistics_loader=TensorBatches(train_images, train_labels, config.batch_size),
            loss_bound=self.loss.bound,
            num_classes=self.data.num_classes,
            variant=self.optimizer_spec.variant,
            batch_size=config.batch_size,
            paper_lambda=config.paper_lambda,
            keras_decay=config.keras_decay,
        )
        self.schedule: Stepper = build_schedule(config.schedule, context, config.schedule_args)
        self.average = WeightAverage(self.net, config.weight_average) if config.weight_average else None
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self._updates = 0  # optimizer steps the run has taken (Stepper.step_update's num_updates)
        self.writer: Any = None  # TensorBoard, opened by run() once the run directory is checked

    # ----------------------------------------------------------------- checkpoints
    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "config": self.config.to_dict(),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.schedule.checkpoint(),
            "scaler": self.scaler.state_dict(),
            "average": self.average.state_dict() if self.average is not None else None,
            "history": self.history,
            **self._rng(),
        }

    def save(self, epoch: int) -> None:
        """Rank 0 writes the checkpoint; under torchrun every other rank writes its RNG states (and
        its own AdaptiveLR state, which must equal rank 0's: the statistics are all-reduced)."""
        if self.dist.is_main:
            self.run_dir.save_checkpoint(self.state(epoch))
        elif self.dist.enabled:
            adaptive = self.schedule.checkpoint()["adaptive"]
            self.run_dir.save_checkpoint({**self._rng(), "epoch": epoch, "adaptive": adaptive}, rank=self.dist.rank)
        self.dist.barrier()

    def load(self) -> None:
        """Continue from the run directory's checkpoint (and this rank's RNG file under torchrun).

        Refused, naming the file (:class:`RunDirError`), before anything is restored: a checkpoint that lacks
        a part or holds one of the wrong kind, one of a newer format, a part that does not fit this run's
        model, optimizer or scheduler; refused (``ValueError``) a config that differs in anything but
        ``epochs``, and an ``epochs`` below the epochs already trained or, for a schedule fitted to the run's
        length, different from the saved one.
        """
        path = self.run_dir.checkpoint
        state = self.run_dir.load_checkpoint(self.device)
        check_layout(state, CHECKPOINT_KEYS, path)
        saved, current = upgraded(state["config"]), self.config.to_dict()  # a checkpoint of before 2026-12 too
        for config in (saved, current):  # schedule_args as the schedule resolves them (defaults filled in)
            config["schedule_args"] = SCHEDULES[config["schedule"]].resolve(config.get("schedule_args", {}))
        differing = sorted(k for k in {*saved, *current} if k != "epochs" and saved.get(k) != current.get(k))
        if differing:
            raise ValueError(f"cannot resume {path}: the config differs in {', '.join(differing)}")
        done, epochs = state["epoch"], self.config.epochs
        if epochs < done:
            raise RunDirError(
                f"cannot resume {path} with epochs={epochs}: it has trained {done} epochs; pass --epochs {done} or "
                "more (a resume never drops finished epochs)"
            )
        if epochs != saved["epochs"] and SCHEDULES[self.config.schedule].fitted_to_run:
            raise RunDirError(
                f"cannot resume {path} with epochs={epochs}: schedule {self.config.schedule!r} was fitted to "
                f"epochs={saved['epochs']} (its shape depends on the run's length); resume with --epochs "
                f"{saved['epochs']}, or start a new run of {epochs} epochs (--overwrite or another --out)"
            )
        rng = state if self.dist.is_main else self.run_dir.load_checkpoint("cpu", rank=self.dist.rank)
        if not self.dist.is_main:
            check_layout(rng, RANK_KEYS, self.run_dir.rank_file(self.dist.rank))
        if rng["epoch"] != done:
            raise ValueError(
                f"cannot resume: {self.run_dir.rank_file(self.dist.rank)} is from epoch {rng['epoch']}, "
                f"{path} from epoch {done}"
            )
        with restoring(path, "model"):
            self.net.load_state_dict(state["model"])
        with restoring(path, "optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.restore(state, lambda entry: restoring(path, entry))
        if self.average is not None:
            with restoring(path, "average"):
                self.average.load_state_dict(state["average"])
        if state["scaler"] and self.scaler.is_enabled():
            with restoring(path, "scaler"):
                self.scaler.load_state_dict(state["scaler"])
        elif state["scaler"] or self.scaler.is_enabled():  # --amp changed between fp16 and another mode
            logger.warning(
                "resuming %s with --amp %s: the run's GradScaler state is %s; the resumed epochs are not the "
                "uninterrupted run's",
                path,
                self.options.amp,
                "dropped" if state["scaler"] else "started afresh",
            )
        with restoring(path if self.dist.is_main else self.run_dir.rank_file(self.dist.rank), "rng_cpu"):
            self._set_rng(rng)
        self.history = state["history"]
        self.start_epoch = done
        self._updates = done * len(self.train_loader)
        logger.info("resumed %s after epoch %d", path, self.start_epoch)

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
                    self.writer = self._tensorboard()
                    if self.writer is not None:
                        cleanup.callback(self.writer.close)
                self.run_dir.write_json("config.json", self.config.to_dict())
            for epoch in range(self.start_epoch, self.config.epochs):
                if self._run_epoch(epoch):
                    break
            if self.dist.is_main:
                self.run_dir.write_json("summary.json", self._summary())
        return self.history

    def _run_epoch(self, epoch: int) -> bool:
        """Train, evaluate, step the schedule, save and log one epoch; returns whether to stop."""
        started = time.perf_counter()
        start = self.schedule.epoch_start()  # the epoch's rate and, for LipschitzLR, its statistics
        train_loss, train_acc = self._train(epoch, start["k"])
        lr = start["lr"]
        if self.optimizer_spec.rate is not None:  # a peer's own step size, as it stands after the epoch
            lr = self.optimizer_spec.rate(self.optimizer, len(self.train_loader))
        tested = self._evaluate()
        self.schedule.step(epoch + 1, train_loss)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "k_z": start["k_z"],
            "max_weight_norm": start["max_weight_norm"],
            "k": start["k"],
            "train_loss": train_loss,
            "train_acc": train_acc,
            **tested,
            "seconds": time.perf_counter() - started,
        }
        self.history.append(row)
        self.save(epoch + 1)  # first: the checkpoint carries the history, so history.json never outruns it
        if self.dist.is_main:
            self.run_dir.write_history(self.history)
            self._log_epoch(row)
        return bool(self.options.on_epoch_end is not None and self.options.on_epoch_end(epoch + 1))

    def _train(self, epoch: int, k: float | None) -> tuple[float, float]:
        """One epoch of :func:`lipschitz_lr_experiments.loop.train_epoch` with the progress bar; returns the
        (loss, accuracy) over all ranks."""
        from tqdm import tqdm

        switch(self.optimizer, "train")
        bar = tqdm(
            total=len(self.train_loader),
            desc=f"{self.config.name} {epoch + 1}/{self.config.epochs}",
            # None: tqdm turns itself off when stderr is not a terminal (logs, CI); rank 0 only
            disable=None if self.options.progress and self.dist.is_main else True,
            leave=False,
            dynamic_ncols=True,
            mininterval=0,  # progress() is called every 10 steps: draw each call
        )

        def progress(step: int, loss: float, accuracy: float) -> None:
            postfix = {"loss": f"{loss:.4f}", "acc": f"{accuracy:.4f}"}
            rate = self.optimizer.param_groups[0].get("lr")  # COCOB bets per coordinate: it has none
            if rate is not None:
                postfix["lr"] = f"{float(rate):.4g}"
            if k is not None:
                postfix["K"] = f"{k:.4g}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(step + 1 - bar.n)  # draws the postfix too (every 10 steps at most)

        with bar:
            loss_sum, correct, seen = train_epoch(
                self.model,
                self.optimizer,
                self.scaler,
                self.train_loader,
                amp=self.options.amp,
                channels_last=self.options.channels_last,
                loss_fn=self.loss.fn,
                takes_loss=self.optimizer_spec.takes_loss,
                after_step=self._after_step,
                progress=None if bar.disable else progress,
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

    @property
    def adaptive(self) -> AdaptiveLR | None:
        """The AdaptiveLR of a LipschitzLR run (its history, its options); None for other schedules."""
        return self.schedule.adaptive

    def recalibration_batches(self, swaps_weights: bool) -> int:
        """The batches BatchNorm is recalibrated over before each evaluation (``bn_recalibration``; unset: 50
        where the optimiser or ``weight_average`` evaluates other weights than it trains, else none)."""
        if self.config.bn_recalibration is not None:
            return self.config.bn_recalibration
        return RECALIBRATION_BATCHES if swaps_weights or self.average is not None else 0

    def _evaluate(self) -> dict[str, float]:
        """Test loss and accuracy of the network as evaluated: the training weights with BatchNorm's running
        statistics as training left them (``*_as_trained``, the paper's), then the weights the run evaluates (for
        Schedule-Free and DoG their average, ``eval()``; with ``weight_average`` the moving average) with statistics
        recalibrated there where :meth:`recalibration_batches` says (``test_*``; else the same values). The
        training weights and statistics are put back afterwards, so checkpoints hold them and training goes on as
        without the evaluation."""
        images, labels, amp, loss_fn = self.data.test_images, self.data.test_labels, self.options.amp, self.loss.fn
        swapped = switch(self.optimizer, "eval")
        try:
            loss, accuracy = evaluate(self.net, images, labels, amp, loss_fn)
            row = {
                "test_loss": loss,
                "test_acc": accuracy,
                "test_loss_as_trained": loss,
                "test_acc_as_trained": accuracy,
            }
            evaluated = self.average.module if self.average is not None else self.net
            limit = self.recalibration_batches(swapped)
            if not limit and evaluated is self.net:
                return row  # the weights as trained, evaluated as they are: the paper's evaluation
            batches = TensorBatches(self.train_loader.images, self.train_loader.labels, self.config.batch_size)
            with kept_batchnorm_statistics(evaluated):
                recalibrated = bool(limit) and recalibrate_batchnorm(evaluated, batches, amp, limit)
                if recalibrated or evaluated is not self.net:
                    row["test_loss"], row["test_acc"] = evaluate(evaluated, images, labels, amp, loss_fn)
            return row
        finally:
            switch(self.optimizer, "train")

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed; skipping TensorBoard logging")
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _log_epoch(self, row: dict[str, Any]) -> None:
        k = f" K={row['k']:.4g}" if row["k"] is not None else ""
        logger.info(
            f"{self.config.name} epoch {row['epoch']}/{self.config.epochs}: lr={row['lr']:.4g}{k} "
            f"loss={row['train_loss']:.4f} acc={row['train_acc']:.4f} test_loss={row['test_loss']:.4f} "
            f"test_acc={row['test_acc']:.4f} ({row['seconds']:.1f}s)"
        )
        if self.writer is not None:
            for key in ("lr", "k", "train_loss", "train_acc", "test_loss", "test_acc"):
                if row[key] is not None:
                    self.writer.add_scalar(key, row[key], row["epoch"])

    def _summary(self) -> dict[str, Any]:
        best = best_epoch(self.history)
        return {
            "name": self.config.name,
            "best_test_acc": best["test_acc"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            "final_test_acc": self.history[-1]["test_acc"] if self.history else None,
            # test_acc's protocol: BatchNorm recalibrated over this many training batches before each evaluation
            "bn_recalibration": self.recalibration_batches(callable(getattr(self.optimizer, "eval", None))),
            "weight_average": self.config.weight_average,
            "epochs": len(self.history),
            "seconds": sum(r["seconds"] for r in self.history),
            "device": describe_device(self.device) + (f" x {self.dist.world_size} ranks" if self.dist.enabled else ""),
            "torch": torch.__version__,
            "precision": precision_settings(
                self.device, self.options.amp, channels_last=self.options.channels_last, compiled=self.options.compile
            ),
            "command": self.options.command,
            "config": self.config.to_dict(),
        }


def run_experiment(config: ExperimentConfig, options: RunOptions) -> list[dict[str, Any]]:
    """Train ``config`` as ``options`` say; returns the per-epoch history."""
    return Trainer(config, options).run()
