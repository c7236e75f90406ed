"""What a run shows and writes about itself: the progress bar, the epoch's log line and TensorBoard
scalars, and ``summary.json``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .config import ExperimentConfig
from .devices import describe_device, precision_settings
from .distributed import DistContext
from .history import best_epoch

logger = logging.getLogger(__name__)

#: ``progress(step, mean_loss, accuracy)``, as :func:`lipschitz_lr_experiments.loop.train_epoch` calls it.
Progress = Callable[[int, float, float], None]


@contextmanager
def progress_bar(
    total: int, desc: str, enabled: bool, shown: Callable[[], dict[str, str]]
) -> Iterator[Progress | None]:
    """A tqdm bar over an epoch's ``total`` steps, its postfix the running loss and accuracy and ``shown()`` (the
    optimiser's rate, the schedule's K); None where it is off: not ``enabled``, or stderr is no terminal (logs, CI)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        disable=None if enabled else True,  # None: tqdm turns itself off when stderr is not a terminal
        leave=False,
        dynamic_ncols=True,
        mininterval=0,  # progress() is called every 10 steps: draw each call
    )

    def progress(step: int, loss: float, accuracy: float) -> None:
        bar.set_postfix({"loss": f"{loss:.4f}", "acc": f"{accuracy:.4f}", **shown()}, refresh=False)
        bar.update(step + 1 - bar.n)  # draws the postfix too

    with bar:
        yield None if bar.disable else progress


def open_tensorboard(out_dir: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` writing to ``out_dir/tensorboard``; None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed; skipping TensorBoard logging")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def log_epoch(name: str, epochs: int, row: dict[str, Any], writer: Any) -> None:
    """The epoch's log line, and its scalars to TensorBoard (``writer``, or None)."""
    k = f" K={row['k']:.4g}" if row["k"] is not None else ""
    logger.info(
        f"{name} epoch {row['epoch']}/{epochs}: lr={row['lr']:.4g}{k} "
        f"loss={row['train_loss']:.4f} acc={row['train_acc']:.4f} test_loss={row['test_loss']:.4f} "
        f"test_acc={row['test_acc']:.4f} ({row['seconds']:.1f}s)"
    )
    if writer is not None:
        for key in ("lr", "k", "train_loss", "train_acc", "test_loss", "test_acc"):
            if row[key] is not None:
                writer.add_scalar(key, row[key], row["epoch"])


def summary(
    config: ExperimentConfig,
    options: Any,
    history: list[dict[str, Any]],
    device: torch.device,
    dist: DistContext,
    bn_recalibration: int,
) -> dict[str, Any]:
    """``summary.json``: the best and final test accuracy, the evaluation protocol (``bn_recalibration``: BatchNorm
    recalibrated over this many training batches before each evaluation), where and how the run ran (``options``,
    its :class:`~lipschitz_lr_experiments.train.RunOptions`)."""
    best = best_epoch(history)
    return {
        "name": config.name,
        "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "final_test_acc": history[-1]["test_acc"] if history else None,
        "bn_recalibration": bn_recalibration,
        "weight_average": config.weight_average,
        "epochs": len(history),
        "seconds": sum(r["seconds"] for r in history),
        "device": describe_device(device) + (f" x {dist.world_size} ranks" if dist.enabled else ""),
        "torch": torch.__version__,
        "precision": precision_settings(
            device, options.amp, channels_last=options.channels_last, compiled=options.compile
        ),
        "command": options.command,
        "config": config.to_dict(),
    }
