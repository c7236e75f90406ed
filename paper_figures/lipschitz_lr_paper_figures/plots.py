"""Matplotlib figures of run histories: learning-rate curves and accuracy/loss panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

History = Sequence[Mapping[str, Any]]

#: One colour per method, the same in every figure.
METHOD_COLOURS = {
    "lipschitz": "tab:blue",
    "lipschitz_averaged": "teal",  # LipschitzLR with a warm-up and the weights' moving average (the demo)
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
    for ax in fig.axes:
        if ax.get_xlabel() in ("epoch", "iteration"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def distinct_colours(labels: Sequence[str], preferred: Mapping[str, str]) -> dict[str, str]:
    """A colour per label, no two alike: its preferred colour unless an earlier label took it, else the next
    unused one of matplotlib's ``tab10``, then of the light half of ``tab20`` (a comparison draws at most 12 runs).

    >>> distinct_colours(["a", "b", "c"], {"a": "#1f77b4", "b": "#1f77b4"})
    {'a': '#1f77b4', 'b': '#ff7f0e', 'c': '#2ca02c'}
    """
    from matplotlib.colors import to_hex

    spare = [to_hex(c) for c in (*plt.get_cmap("tab10").colors, *plt.get_cmap("tab20").colors[1::2])]
    taken: set[str] = set()
    chosen = {}
    for label in labels:
        colour = preferred.get(label)
        if colour is None or to_hex(colour) in taken:
            colour = next(c for c in spare if c not in taken)
        chosen[label] = colour
        taken.add(to_hex(colour))
    return chosen


def plot_comparison(
    runs: Mapping[str, History],
    out_stem: Path,
    title: str,
    colours: Mapping[str, str] | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Three panels: learning rate per epoch, test accuracy, train/test loss, one line per run."""
    fig, (ax_lr, ax_acc, ax_loss) = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    all_lrs: list[float] = []
    all_losses: list[float] = []
    palette = distinct_colours(list(runs), colours or {})  # one colour per run, the same in every panel
    for label, history in runs.items():
        colour = palette[label]
        all_losses += [row[key] for row in history for key in ("train_loss", "test_loss")]
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
    if _spans_orders_of_magnitude([v for v in all_losses if v == v], orders=2):  # v == v drops NaN
        ax_loss.set_yscale("log")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    for ax in (ax_lr, ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, out_stem, formats)


def plot_lr_views(history: History, out_stem: Path, title: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """The learning rate per epoch: all epochs, from epoch 2 and from epoch 3 (the paper's views)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    for ax, start in zip(axes, (1, 2, 3), strict=True):
        rows = [row for row in history if row["epoch"] >= start]
        lrs = [row["lr"] for row in rows]
        ax.plot([row["epoch"] for row in rows], lrs, marker="o", markersize=3, color=METHOD_COLOURS["lipschitz"])
        if _spans_orders_of_magnitude(lrs):
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="learning rate", title="all epochs" if start == 1 else f"from epoch {start}")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save(fig, out_stem, formats)


def plot_curves(history: History, out_stem: Path, title: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Accuracy and loss per epoch, train against test."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "--"), ("test", "-")):
        ax_acc.plot(epochs, [100 * row[f"{split}_acc"] for row in history], style, label=split)
        ax_loss.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    losses = [row[f"{s}_loss"] for row in history for s in ("train", "test")]
    if _spans_orders_of_magnitude(losses, orders=2):
        ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save(fig, out_stem, formats)


def plot_lr_grid(
    panels: Sequence[Sequence[tuple[str, History | None]]], out_stem: Path, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """A grid of learning-rate curves (the 2020 version's 3x3 figure); ``None`` marks a run not made."""
    rows, cols = len(panels), len(panels[0])
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    for r, row in enumerate(panels):
        for c, (label, history) in enumerate(row):
            ax = axes[r][c]
            ax.set_title(label, fontsize=9)
            if history is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="gray")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            lrs = [row_["lr"] for row_ in history]
            ax.plot([row_["epoch"] for row_ in history], lrs, color=METHOD_COLOURS["lipschitz"])
            if _spans_orders_of_magnitude(lrs):
                ax.set_yscale("log")
            ax.set(xlabel="epoch", ylabel="learning rate")
            ax.grid(alpha=0.3)
    return save(fig, out_stem, formats)


def plot_classical(result_pair: Sequence[Mapping[str, Any]], out_stem: Path, formats: Sequence[str] = ("png", "pdf")):
    """Loss (log axis) and accuracy per iteration of full-batch GD, alpha = 0.1 against alpha = 1/L."""
    has_accuracy = any(r.get("accuracy_curve") for r in result_pair)
    fig, axes = plt.subplots(
        1, 2 if has_accuracy else 1, figsize=(11 if has_accuracy else 5.5, 3.8), squeeze=False, layout="constrained"
    )
    colours = {"alpha=0.1": METHOD_COLOURS["constant"], "alpha=1/L": METHOD_COLOURS["lipschitz"]}
    for r in result_pair:
        label = f"{r['lr_name']} ({r['lr']:.3g})"
        axes[0][0].plot(r["loss_curve"], label=label, color=colours.get(r["lr_name"]))
        if has_accuracy:
            axes[0][1].plot([100 * a for a in r["accuracy_curve"]], label=label, color=colours.get(r["lr_name"]))
    axes[0][0].axhline(result_pair[0]["threshold"], color="gray", ls=":", label="threshold $T_L$")
    axes[0][0].set(xlabel="iteration", ylabel="loss", title="Loss", yscale="log")
    if has_accuracy:
        axes[0][1].set(xlabel="iteration", ylabel="training accuracy (%)", title="Accuracy")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    first = result_pair[0]
    fig.suptitle(f"{first['problem']} regression, {first['dataset']}")
    return save(fig, out_stem, formats)


def plot_gallery(curves: Mapping[str, Sequence[float]], out_stem: Path, title: str, formats=("png", "pdf")):
    """LipschitzLR's trajectory beside the classic schedules over the same epochs."""
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    values: list[float] = []
    for name, lrs in curves.items():
        values += list(lrs)
        ax.plot(
            range(1, len(lrs) + 1),
            lrs,
            label=name,
            color=METHOD_COLOURS.get(name),
            linewidth=2.5 if name == "lipschitz" else 1.2,
        )
    if _spans_orders_of_magnitude(values):
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="learning rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return save(fig, out_stem, formats)
