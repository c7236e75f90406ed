"""Table 1 of the paper (best test accuracy, %), beside our runs."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from lipschitz_lr_experiments.paper import PAPER_TABLE1

from .history import Run, best_epoch


def _ours(runs: Sequence[Run]) -> tuple[str, float | None]:
    """Our best test accuracy (%) over seeds, as ``mean ± sample std``, and the mean (None: no finite accuracy)."""
    bests = [best_epoch(run.history) for run in runs]
    accuracies = [100 * best["test_acc"] for best in bests if best is not None]
    if not accuracies:
        return "no finite accuracy", None
    mean = statistics.fmean(accuracies)
    text = f"{mean:.2f}" if len(accuracies) == 1 else f"{mean:.2f} ± {statistics.stdev(accuracies):.2f}"
    if len(accuracies) < len(runs):
        text += f" ({len(accuracies)} of {len(runs)} finite)"
    return text, mean


def table1_markdown(runs: Mapping[str, Sequence[Run]]) -> str:
    """Markdown: the paper's number, ours (best test epoch; mean ± sample std over seeds), the difference, the
    epochs, the seeds, our device(s) and the first seed's command. ``runs`` as :func:`read_runs` returns them."""
    lines = [
        "| experiment | config | paper (%) | ours (%) | difference | epochs | seeds | device | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, config, paper in PAPER_TABLE1:
        if not runs.get(config):
            lines.append(f"| {label} | `{config}` | {paper:.2f} | not run | - | - | - | - | - |")
            continue
        group = runs[config]
        ours, mean = _ours(group)
        difference = "-" if mean is None else f"{mean - paper:+.2f}"
        lengths = sorted({len(run.history) for run in group})
        epochs = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"
        seeds = ", ".join("?" if run.seed is None else str(run.seed) for run in group)
        summaries = [run.summary or {} for run in group]
        device = "; ".join(dict.fromkeys(str(s.get("device", "unknown")) for s in summaries))
        command = summaries[0].get("command", "unknown")
        lines.append(
            f"| {label} | `{config}` | {paper:.2f} | {ours} | {difference} | {epochs} | {seeds} | {device} | "
            f"`{command}` |"
        )
    return "\n".join(lines) + "\n"


#: The authors' MNIST runs as their notebooks logged them (yrahul3910/adaptive-lr-dnn, ``MNIST/MNIST.ipynb``,
#: ``MNIST/MNIST Momentum.ipynb``, ``MNIST/MNIST_Adam.ipynb``; Keras' "Epoch 0 LR" is our epoch 1):
#: learning rates of epochs 1-5, of epoch 20, and the best validation (test) accuracy, which is the paper's.
AUTHORS_MNIST: dict[str, tuple[tuple[float, ...], float, float]] = {
    "mnist_sgd": ((2.6241, 2.2206, 2.9522, 2.5048, 2.3866), 2.3377, 99.50),
    "mnist_momentum": ((0.1, 1.4273, 0.8057, 0.5788, 0.4618), 0.1889, 99.57),
    "mnist_adam": ((0.03844, 0.03449, 0.02819, 0.02455, 0.02258), 0.04190, 99.43),
}
MNIST_ROWS = ("mnist_sgd", "mnist_sgd_hook", "mnist_momentum", "mnist_adam")


def mnist_lr_markdown(histories: Mapping[str, list[dict[str, Any]]]) -> str:
    """Our MNIST LipschitzLR runs beside the authors' logs: learning rates of epochs 1-5 and 20, best accuracy."""

    def rates(values: Sequence[float]) -> str:
        return ", ".join(f"{v:.4g}" for v in values)

    lines = [
        "| config | ours: lr, epochs 1-5 | ours: lr, epoch 20 | ours: best test accuracy (epoch) | "
        "authors: lr, epochs 1-5 | authors: lr, epoch 20 | paper: best |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MNIST_ROWS:
        if name in AUTHORS_MNIST:
            first, last, paper = AUTHORS_MNIST[name]
            authors = f"{rates(first)} | {last:.4g} | {paper:.2f}"
        else:
            authors = "- | - | -"
        if name not in histories:
            lines.append(f"| `{name}` | not run | - | - | {authors} |")
            continue
        history = histories[name]
        best = best_epoch(history)
        ours_best = "no finite accuracy" if best is None else f"{100 * best['test_acc']:.2f} ({best['epoch']})"
        last_row = history[-1]
        lines.append(
            f"| `{name}` | {rates([r['lr'] for r in history[:5]])} | {last_row['lr']:.4g} (epoch {last_row['epoch']}) "
            f"| {ours_best} | {authors} |"
        )
    return "\n".join(lines) + "\n"
