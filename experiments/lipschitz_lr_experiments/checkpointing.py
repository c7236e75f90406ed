"""The trainer's checkpoints: what one holds, who writes it, and how a resume reads it back.

:class:`Checkpointing` is the part of :class:`~lipschitz_lr_experiments.train.Trainer` that turns a run into
``checkpoint.pt`` (and, under torchrun, each other rank's ``rank<N>.pt``) and back; the files themselves, their
layout and atomic writes are :mod:`lipschitz_lr_experiments.run_dir`'s. On CPU with a fixed seed a resumed run
ends with exactly the history of an uninterrupted one: a checkpoint carries the RNG states of dropout and of the
data order and augmentation.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from .averaging import WeightAverage
from .config import ExperimentConfig, upgraded
from .data import TensorBatches
from .distributed import DistContext
from .run_dir import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, RANK_KEYS, RunDirectory, RunDirError, check_layout, restoring
from .schedules import SCHEDULES
from .stepper import Stepper

logger = logging.getLogger(__name__)


class Checkpointing:
    """:meth:`state`, :meth:`save` and :meth:`load` of a :class:`~lipschitz_lr_experiments.train.Trainer`, from
    and into the trainer's attributes below."""

    config: ExperimentConfig
    options: Any  # RunOptions
    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Stepper
    scaler: torch.amp.GradScaler
    average: WeightAverage | None
    history: list[dict[str, Any]]
    dist: DistContext
    run_dir: RunDirectory
    device: torch.device
    generator: torch.Generator
    train_loader: TensorBatches
    start_epoch: int
    _updates: int

    def state(self, epoch: int) -> dict[str, Any]:
        """The checkpoint after ``epoch`` epochs (:data:`~lipschitz_lr_experiments.run_dir.CHECKPOINT_KEYS`)."""
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
