"""The paper's models, one per file, built by name through :func:`build_model`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..registry import Registry
from .densenet import densenet40
from .mnist_cnn import MnistCNN
from .resnet_v1 import resnet20_v1
from .resnet_v2 import resnet56_v2, resnet164_v2

#: The model registry: name -> ``builder(num_classes=, keras_faithful=)``. A new model is a file here
#: and one line below (test: ``tests/experiments/test_models.py``).
MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model",
    {
        "mnist_cnn": MnistCNN,
        "resnet20_v1": resnet20_v1,
        "resnet56_v2": resnet56_v2,
        "resnet164_v2": resnet164_v2,
        "densenet40": densenet40,
    },
)


def build_model(name: str, num_classes: int, *, keras_faithful: bool = True) -> nn.Module:
    """Build a model by name. ``keras_faithful`` uses the authors' Keras initialisation and
    BatchNorm settings (momentum 0.99, i.e. PyTorch ``momentum=0.01``, eps 1e-3); otherwise
    PyTorch's defaults."""
    return MODELS.lookup(name)(num_classes=num_classes, keras_faithful=keras_faithful)


__all__ = ["MODELS", "build_model"]
