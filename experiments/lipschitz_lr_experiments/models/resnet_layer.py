"""The Keras CIFAR-10 ResNet example's ``resnet_layer``: Conv2D + optional BN + optional ReLU."""

from __future__ import annotations

from torch import Tensor, nn

from .keras_init import batch_norm_kwargs


class ResNetLayer(nn.Module):
    """Conv-BN-ReLU (``conv_first=True``, v1) or BN-ReLU-Conv (``conv_first=False``, v2).

    Convolutions are ``same``-padded with a bias (Keras' ``Conv2D`` default). The BN has the
    channels of the tensor it normalises: the output for ``conv_first``, the input otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        activation: bool = True,
        batch_norm: bool = True,
        conv_first: bool = True,
        keras_faithful: bool = True,
    ) -> None:
        super().__init__()
        self.conv_first = conv_first
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        bn_channels = out_channels if conv_first else in_channels
        self.bn = nn.BatchNorm2d(bn_channels, **batch_norm_kwargs(keras_faithful)) if batch_norm else nn.Identity()
        self.act = nn.ReLU(inplace=not conv_first) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.conv_first:
            return self.act(self.bn(self.conv(x)))
        return self.conv(self.act(self.bn(x)))
