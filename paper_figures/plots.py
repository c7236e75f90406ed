"""Matplotlib figures of run histories: learning-rate curves and accuracy/loss panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

History = Sequence[Mapping[str, Any]]

#: One colour per method, the same in every figure.
METHOD_COLOURS = {
    "lipschitz": "tab:blue",
    "constant": "tab:orange",
    "step": "tab:green",
    "piecewise": "tab:olive",
    "exponential": "tab:red",
    "polynomial": "tab:purple",
    "inverse_time": "tab:brown",
    "cosine": "tab:pink",
    "cosine_restarts": "tab:gray",
    "cyclic": "tab:cyan",
    "onecycle": "black",
    "warmup": "gold",
    "plateau": "navy",
}


def _spans_orders_of_magnitude(values: Sequence[float], orders: float = 1.5) -> bool:
    positive = [v for v in values if v is not None and v > 0]
    return len(positive) > 1 and max(positive) / min(positive) > 10**orders


def save(fig: plt.Figure, out_stem: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_comparison(
    runs: Mapping[str, History],
    out_stem: Path,
    title: str,
    colours: Mapping[str, str] | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Three panels: learning rate per epoch, test accuracy, train/test loss, one line per run."""
    fig, (ax_lr, ax_acc, ax_loss) = plt.subplots(1, 3, figsize=(15, 4.2))
    all_lrs: list[float] = []
    for label, history in runs.items():
        colour = (colours or {}).get(label)
        epochs = [row["epoch"] for row in history]
        lrs = [row["lr"] for row in history]
        all_lrs += lrs
        ax_lr.plot(epochs, lrs, marker="o", markersize=3, label=label, color=colour)
        ax_acc.plot(epochs, [100 * row["test_acc"] for row in history], label=f"{label} (test)", color=colour)
        ax_acc.plot(
            epochs, [100 * row["train_acc"] for row in history], "--", alpha=0.6, color=colour, label=f"{label} (train)"
        )
        ax_loss.plot(epochs, [row["test_loss"] for row in history], label=f"{label} (test)", color=colour)
        ax_loss.plot(
            epochs, [row["train_loss"] for row in history], "--", alpha=0.6, color=colour, label=f"{label} (train)"
        )
    if _spans_orders_of_magnitude(all_lrs):
        ax_lr.set_yscale("log")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    for ax in (ax_lr, ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, out_stem, formats)
