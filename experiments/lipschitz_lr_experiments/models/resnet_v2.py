"""ResNet v2 for CIFAR (Keras example ``resnet_v2``): pre-activation bottleneck blocks.

Depth ``9n + 2``: ResNet-56 v2 (n = 6) and ResNet-164 v2 (n = 18).
"""

from __future__ import annotations

from torch import Tensor, nn

from .keras_init import batch_norm_kwargs, keras_initialize
from .resnet_layer import ResNetLayer


class BottleneckV2(nn.Module):
    """BN-ReLU-Conv1x1, BN-ReLU-Conv3x3, BN-ReLU-Conv1x1 (x4 channels), projection on the first."""

    def __init__(
        self, in_channels: int, width: int, out_channels: int, stride: int, preactivate: bool, keras_faithful: bool
    ) -> None:
        super().__init__()
        kf = keras_faithful
        self.conv1 = ResNetLayer(
            in_channels,
            width,
            1,
            stride,
            activation=preactivate,
            batch_norm=preactivate,
            conv_first=False,
            keras_faithful=kf,
        )
        self.conv2 = ResNetLayer(width, width, conv_first=False, keras_faithful=kf)
        self.conv3 = ResNetLayer(width, out_channels, 1, conv_first=False, keras_faithful=kf)
        self.shortcut = (
            ResNetLayer(in_channels, out_channels, 1, stride, activation=False, batch_norm=False)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv3(self.conv2(self.conv1(x)))


class ResNetV2(nn.Module):
    def __init__(self, depth: int = 56, num_classes: int = 10, keras_faithful: bool = True) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"ResNet v2 depth must be 9n+2 (56, 110, 164, ...), got depth={depth}")
        blocks_per_stage = (depth - 2) // 9
        layers: list[nn.Module] = [ResNetLayer(3, 16, keras_faithful=keras_faithful)]
        width = channels = 16
        for stage in range(3):
            out_channels = width * 4 if stage == 0 else width * 2
            for block in range(blocks_per_stage):
                first = block == 0
                stride = 2 if stage > 0 and first else 1
                preactivate = not (stage == 0 and first)  # the stem already ends in BN-ReLU
                layers.append(BottleneckV2(channels, width, out_channels, stride, preactivate, keras_faithful))
                channels = out_channels
            width = out_channels
        self.features = nn.Sequential(
            *layers,
            nn.BatchNorm2d(channels, **batch_norm_kwargs(keras_faithful)),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(channels, num_classes)
        if keras_faithful:
            keras_initialize(self, conv="he_normal", dense="he_normal")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def resnet56_v2(num_classes: int = 10, keras_faithful: bool = True) -> ResNetV2:
    return ResNetV2(56, num_classes, keras_faithful)


def resnet164_v2(num_classes: int = 10, keras_faithful: bool = True) -> ResNetV2:
    return ResNetV2(164, num_classes, keras_faithful)
