"""Table 1 of the paper (best test accuracy, %), beside our runs."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .history import Run, best_epoch

# (row label, our config name, the paper's number). Baselines are the paper's fixed-LR runs.
PAPER_TABLE1: tuple[tuple[str, str, float], ...] = (
    ("MNIST CNN, SGD, LipschitzLR", "mnist_sgd", 99.50),
    ("MNIST CNN, SGD, LipschitzLR, statistics from the training passes", "mnist_sgd_hook", 99.50),
    ("MNIST CNN, Momentum, LipschitzLR", "mnist_momentum", 99.57),
    ("MNIST CNN, Adam, LipschitzLR", "mnist_adam", 99.43),
    ("CIFAR-10 ResNet-20, SGD (1e-3), baseline", "c10_resnet20_sgd_baseline", 60.33),
    ("CIFAR-10 ResNet-20, SGD (1e-3), LipschitzLR", "c10_resnet20_sgd", 89.37),
    ("CIFAR-10 ResNet-20, SGD, fixed 1/K of epoch 1 (0.668)", "c10_resnet20_sgd_fixed0668", 87.02),
    ("CIFAR-10 ResNet-20, Momentum (1e-3), baseline", "c10_resnet20_momentum_baseline", 58.29),
    ("CIFAR-10 ResNet-20, Momentum (1e-3), LipschitzLR", "c10_resnet20_momentum", 89.27),
    ("CIFAR-10 ResNet-20, Momentum (1e-2), LipschitzLR", "c10_resnet20_momentum_wd1e-2", 84.71),
    ("CIFAR-10 ResNet-20, RMSprop (1e-3), baseline", "c10_resnet20_rmsprop_baseline", 84.92),
    ("CIFAR-10 ResNet-20, RMSprop (1e-3), LipschitzLR", "c10_resnet20_rmsprop", 86.66),
    ("CIFAR-10 ResNet-20, Adam, baseline", "c10_resnet20_adam_baseline", 84.67),
    ("CIFAR-10 ResNet-20, Adam, fixed ~0.05", "c10_resnet20_adam_fixed005", 70.57),
    ("CIFAR-10 DenseNet-40, SGD (1e-4), baseline", "c10_densenet40_sgd_baseline", 84.84),
    ("CIFAR-10 DenseNet-40, SGD (1e-4), LipschitzLR", "c10_densenet40_sgd", 91.34),
    ("CIFAR-10 DenseNet-40, Momentum (1e-4), baseline", "c10_densenet40_momentum_baseline", 85.50),
    ("CIFAR-10 DenseNet-40, Momentum (1e-4), LipschitzLR", "c10_densenet40_momentum", 92.36),
    ("CIFAR-10 DenseNet-40, RMSprop (1e-4), baseline", "c10_densenet40_rmsprop_baseline", 91.36),
    ("CIFAR-10 DenseNet-40, RMSprop (1e-4), LipschitzLR", "c10_densenet40_rmsprop", 90.14),
    ("CIFAR-10 DenseNet-40, Adam (1e-4), baseline", "c10_densenet40_adam_baseline", 91.38),
    ("CIFAR-10 DenseNet-40, Adam (1e-4), LipschitzLR", "c10_densenet40_adam", 88.23),
    ("CIFAR-100 ResNet-56 v2, SGD (1e-3), LipschitzLR", "c100_resnet56v2_sgd", 54.29),
    ("CIFAR-100 ResNet-164 v2, SGD (1e-4), baseline", "c100_resnet164v2_sgd_baseline", 26.96),
    ("CIFAR-100 ResNet-164 v2, SGD (1e-4), LipschitzLR", "c100_resnet164v2_sgd", 75.99),
    ("CIFAR-100 ResNet-164 v2, Momentum (1e-4), baseline", "c100_resnet164v2_momentum_baseline", 27.51),
    ("CIFAR-100 ResNet-164 v2, Momentum (1e-4), LipschitzLR", "c100_resnet164v2_momentum", 75.39),
    ("CIFAR-100 ResNet-164 v2, RMSprop (1e-4), baseline", "c100_resnet164v2_rmsprop_baseline", 70.68),
    ("CIFAR-100 ResNet-164 v2, RMSprop (1e-4), LipschitzLR", "c100_resnet164v2_rmsprop", 70.78),
    ("CIFAR-100 ResNet-164 v2, Adam (1e-4), baseline", "c100_resnet164v2_adam_baseline", 71.96),
    ("CIFAR-100 DenseNet-40, SGD (1e-4), baseline", "c100_densenet40_sgd_baseline", 50.53),
    ("CIFAR-100 DenseNet-40, SGD (1e-4), LipschitzLR", "c100_densenet40_sgd", 68.18),
    ("CIFAR-100 DenseNet-40, Momentum (1e-4), baseline", "c100_densenet40_momentum_baseline", 52.28),
    ("CIFAR-100 DenseNet-40, Momentum (1e-4), LipschitzLR", "c100_densenet40_momentum", 69.18),
    ("CIFAR-100 DenseNet-40, RMSprop (1e-4), baseline", "c100_densenet40_rmsprop_baseline", 65.41),
    ("CIFAR-100 DenseNet-40, RMSprop (1e-4), LipschitzLR", "c100_densenet40_rmsprop", 67.30),
    ("CIFAR-100 DenseNet-40, Adam (1e-4), baseline", "c100_densenet40_adam_baseline", 66.05),
    ("CIFAR-100 DenseNet-40, Adam (1e-4), LipschitzLR", "c100_densenet40_adam", 40.14),
)


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
