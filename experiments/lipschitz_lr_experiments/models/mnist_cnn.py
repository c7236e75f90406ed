"""The paper's MNIST CNN (730,346 trainable parameters, as the authors' Keras model)."""

from __future__ import annotations

from torch import Tensor, nn

from .keras_init import batch_norm_kwargs, keras_initialize


class MnistCNN(nn.Module):
    """Conv32-Conv32-Pool-Drop.2, Conv64 x2-Pool-Drop.25, Conv128-Drop.25, Dense128-BN-Drop.25, Dense.

    ``head`` is the last linear layer: its inputs (128 features after BN and dropout) are the
    penultimate activations LipschitzLR bounds. With ``keras_faithful`` the initialisers are the
    authors': every ``Conv2D`` has ``kernel_initializer='he_normal'`` and the two ``Dense`` layers
    keep Keras' default glorot_uniform (``MNIST/MNIST.ipynb``, ``MNIST Momentum.ipynb`` and
    ``MNIST_Adam.ipynb`` in yrahul3910/adaptive-lr-dnn, the cell that builds ``model``). This sets
    the scale of ``K_z`` at initialisation: about 2-4 with glorot convolutions, about 90-170 (seeds 0-4) with
    he_normal (epoch-0 SGD learning rate ~2-3, as the authors' notebook logs).
    """

    def __init__(self, num_classes: int = 10, keras_faithful: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(0.2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.25),
            nn.Flatten(),
        )
        self.penultimate = nn.Sequential(
            nn.Linear(128 * 6 * 6, 128),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(128, **batch_norm_kwargs(keras_faithful)),
            nn.Dropout(0.25),
        )
        self.head = nn.Linear(128, num_classes)
        if keras_faithful:
            keras_initialize(self, conv="he_normal", dense="glorot_uniform")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.penultimate(self.features(x)))
