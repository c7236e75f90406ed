import math

import pytest
import torch
from torch import nn

from lipschitz_lr_experiments.models import MODELS, build_model
from lipschitz_lr_experiments.models.keras_init import he_normal_

# Trainable parameters (BN moving statistics are buffers, as in Keras' "non-trainable").
# mnist_cnn and resnet20_v1 match the authors' Keras models (730,346 and 273,066); the others are
# the counts of our ports of the Keras example's resnet_v2 and of DenseNet-40 (k=12).
PARAMETERS = {
    ("mnist_cnn", 10): 730_346,
    ("resnet20_v1", 10): 273_066,
    ("resnet56_v2", 100): 1_686_468,
    ("resnet164_v2", 100): 4_964_676,
    ("densenet40", 10): 1_059_298,
    ("densenet40", 100): 1_100_428,
}
#: The paper's models' penultimate widths (a new model needs no entry: its head is checked against its forward pass).
PENULTIMATE = {"mnist_cnn": 128, "resnet20_v1": 64, "resnet56_v2": 256, "resnet164_v2": 256, "densenet40": 456}


@pytest.mark.parametrize(("name", "classes"), list(PARAMETERS))
def test_parameter_counts(name, classes):
    model = build_model(name, classes)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[(name, classes)]


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_shape_and_head(name):
    torch.manual_seed(0)
    model = build_model(name, 10).eval()
    widths = []
    model.head.register_forward_hook(lambda module, inputs, output: widths.append(inputs[0].shape[-1]))
    x = torch.randn(2, 1, 28, 28) if name == "mnist_cnn" else torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[-1] is model.head and widths == [model.head.in_features]
    assert model.head.in_features == PENULTIMATE.get(name, model.head.in_features)


def test_keras_batch_norm_settings_and_torch_defaults():
    keras = build_model("resnet20_v1", 10)
    torch_default = build_model("resnet20_v1", 10, keras_faithful=False)
    bn = next(m for m in keras.modules() if isinstance(m, nn.BatchNorm2d))
    assert (bn.momentum, bn.eps) == (0.01, 1e-3)
    bn = next(m for m in torch_default.modules() if isinstance(m, nn.BatchNorm2d))
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)
    convs = [m for m in keras.modules() if isinstance(m, nn.Conv2d)]
    assert all(float(c.bias.detach().abs().max()) == 0 for c in convs)


def test_he_normal_matches_keras_truncated_normal():
    torch.manual_seed(0)
    w = he_normal_(torch.empty(256, 64, 3, 3))
    target = math.sqrt(2.0 / (64 * 9))
    assert float(w.std()) == pytest.approx(target, rel=0.02)
    assert float(w.abs().max()) <= 2 * target / 0.87962566103423978 + 1e-6


def test_mnist_cnn_initialisers_are_the_authors():
    """MNIST/*.ipynb: every Conv2D has kernel_initializer='he_normal'; both Dense layers keep glorot_uniform."""
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        fan_in = conv.in_channels * 9
        assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.12)
        assert float(conv.weight.detach().abs().max()) <= 2 * math.sqrt(2.0 / fan_in) / 0.87962566103423978 + 1e-6
    for dense in (m for m in model.modules() if isinstance(m, nn.Linear)):
        limit = math.sqrt(6.0 / (dense.in_features + dense.out_features))
        assert float(dense.weight.detach().abs().max()) <= limit
        assert float(dense.weight.detach().abs().max()) > 0.9 * limit  # uniform, not a normal of that scale
    assert all(float(m.bias.detach().abs().max()) == 0 for m in [*convs, model.head])


def test_densenet_batch_norm_epsilon_is_titu1994s():
    bns = [m for m in build_model("densenet40", 10).modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all((bn.momentum, bn.eps) == (0.01, 1.1e-5) for bn in bns)
    clean = [m for m in build_model("densenet40", 10, keras_faithful=False).modules() if isinstance(m, nn.BatchNorm2d)]
    assert all((bn.momentum, bn.eps) == (0.1, 1e-5) for bn in clean)


def test_densenet_l2_applies_to_first_and_transition_convs_only():
    model = build_model("densenet40", 10)
    regularized = model.l2_regularized_modules()
    assert len(regularized) == 3 and regularized[0] is model.features[0]


def test_unknown_model_and_bad_depths():
    with pytest.raises(ValueError, match="unknown model 'vgg16'"):
        build_model("vgg16", 10)
    from lipschitz_lr_experiments.models.densenet import DenseNet
    from lipschitz_lr_experiments.models.resnet_v1 import ResNetV1
    from lipschitz_lr_experiments.models.resnet_v2 import ResNetV2

    with pytest.raises(ValueError, match="depth=21"):
        ResNetV1(21)
    with pytest.raises(ValueError, match="depth=57"):
        ResNetV2(57)
    with pytest.raises(ValueError, match="depth=41"):
        DenseNet(41)
