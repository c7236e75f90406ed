"""ResNet v1 for CIFAR (Keras example ``resnet_v1``); ResNet-20 is depth 20 (0.27M parameters)."""

from __future__ import annotations

from torch import Tensor, nn

from .keras_init import keras_initialize
from .resnet_layer import ResNetLayer


class BasicBlockV1(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, keras_faithful: bool) -> None:
        super().__init__()
        self.conv1 = ResNetLayer(in_channels, out_channels, stride=stride, keras_faithful=keras_faithful)
        self.conv2 = ResNetLayer(out_channels, out_channels, activation=False, keras_faithful=keras_faithful)
        self.shortcut = (
            ResNetLayer(in_channels, out_channels, 1, stride, activation=False, batch_norm=False)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shortcut(x) + self.conv2(self.conv1(x)))


class ResNetV1(nn.Module):
    """Three stages of ``(depth - 2) / 6`` basic blocks, 16/32/64 filters, global average pool."""

    def __init__(self, depth: int = 20, num_classes: int = 10, keras_faithful: bool = True) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet v1 depth must be 6n+2 (20, 32, 44, 56, ...), got depth={depth}")
        blocks_per_stage = (depth - 2) // 6
        layers: list[nn.Module] = [ResNetLayer(3, 16, keras_faithful=keras_faithful)]
        channels = 16
        for stage in range(3):
            out_channels = 16 * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlockV1(channels, out_channels, stride, keras_faithful))
                channels = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, num_classes)
        if keras_faithful:
            keras_initialize(self, conv="he_normal", dense="he_normal")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def resnet20_v1(num_classes: int = 10, keras_faithful: bool = True) -> ResNetV1:
    return ResNetV1(20, num_classes, keras_faithful)
