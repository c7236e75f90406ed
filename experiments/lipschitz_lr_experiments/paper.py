"""The paper's Table 1 (arXiv 1902.07399): its rows, each with the bundled config that reruns it and the
paper's best test accuracy. ``lipschitz-lr reproduce`` expands these rows over seeds; the figures
(``lipschitz_lr_paper_figures.table1``) set our runs beside the paper's numbers.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PAPER_TABLE1", "PaperRow"]


class PaperRow(NamedTuple):
    """One row of Table 1: its ``label``, our ``config`` name, and the ``paper``'s best test accuracy (%)."""

    label: str
    config: str
    paper: float


#: Table 1's rows; baselines are the paper's fixed-LR runs.
PAPER_TABLE1: tuple[PaperRow, ...] = tuple(
    PaperRow(*row)
    for row in (
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
)
