"""DenseNet-40 (k = 12) for CIFAR: 3 dense blocks of 12 BN-ReLU-Conv3x3 layers, no bottleneck or
compression, 24 initial filters, no dropout; the penultimate activations are the 456 channels
after the final BN-ReLU and global average pool.

The authors' DenseNet scripts (``CIFAR10/*/DenseNet/*/cif.py`` in yrahul3910/adaptive-lr-dnn)
call ``densenet.DenseNet(img_dim, classes, depth=40, nb_dense_block=3, growth_rate=12,
nb_filter=-1, dropout_rate=0.0, weights=None)`` from titu1994/DenseNet, which their repository
does not include. We follow that file's 2018 layout: convs he_normal without bias, Keras ``l2``
on the first conv and the transition convs only, BatchNormalization(epsilon=1.1e-5) with Keras'
momentum 0.99, a glorot_uniform Dense head. An older version of the same file (he_uniform, l2 on
every conv, on BN gamma/beta and on the head, BN epsilon 1e-3) differs; which one the authors
ran cannot be read from their repository (docs/fidelity.md, "Where we deviate, and why").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .keras_init import batch_norm_kwargs, keras_initialize

# titu1994/DenseNet's BatchNormalization(epsilon=1.1e-5).
DENSENET_BN_EPS = 1.1e-5


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, keras_faithful: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels, **batch_norm_kwargs(keras_faithful, DENSENET_BN_EPS))
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(self.act(self.bn(x)))], dim=1)


class Transition(nn.Module):
    def __init__(self, channels: int, keras_faithful: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, **batch_norm_kwargs(keras_faithful, DENSENET_BN_EPS))
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(self.act(self.bn(x))))


class DenseNet(nn.Module):
    def __init__(
        self,
        depth: int = 40,
        growth: int = 12,
        initial_filters: int = 24,
        num_classes: int = 10,
        keras_faithful: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 4) % 3 != 0:
            raise ValueError(f"DenseNet depth must be 3n+4 (40, 100, ...), got depth={depth}")
        layers_per_block = (depth - 4) // 3
        channels = initial_filters
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                layers.append(DenseLayer(channels, growth, keras_faithful))
                channels += growth
            if block < 2:
                layers.append(Transition(channels, keras_faithful))
        self.features = nn.Sequential(
            *layers,
            nn.BatchNorm2d(channels, **batch_norm_kwargs(keras_faithful, DENSENET_BN_EPS)),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes)
        if keras_faithful:
            keras_initialize(self, conv="he_normal", dense="glorot_uniform")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def l2_regularized_modules(self) -> list[nn.Module]:
        """The convs the authors' Keras DenseNet regularised with l2(1e-4): the first and the transitions."""
        return [self.features[0]] + [m.conv for m in self.modules() if isinstance(m, Transition)]


def densenet40(num_classes: int = 10, keras_faithful: bool = True) -> DenseNet:
    return DenseNet(40, 12, 24, num_classes, keras_faithful)
