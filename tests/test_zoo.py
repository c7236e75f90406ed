"""The practitioners' zoo: AdaptiveLR with its defaults on the models people train, tiny random data, a few steps.

Every written rate must be finite and inside ``SANE_LR_RANGE`` and the loss finite. So far the torchvision
BatchNorm networks the practitioners' issue measured (timm, Hugging Face, an LSTM tagger and a regressor with
dict batches are still to come).
"""

import math
import warnings

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.adaptive_lr import SANE_LR_RANGE

torchvision = pytest.importorskip("torchvision")


def _train(model, batches, epochs=2, **options):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = AdaptiveLR(optimizer, model, batches, num_classes=10, variant="momentum", **options)
    losses = []
    for _ in range(epochs):
        model.train()
        for x, y in batches:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
    return [record.lr for record in scheduler.history], losses


def _batches(n=2, m=8, size=32):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(m, 3, size, size, generator=g), torch.randint(0, 10, (m,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_torchvision_batchnorm_nets_train_with_the_defaults(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no rate outside the sane range, no guard
        rates, losses = _train(model, _batches())
    low, high = SANE_LR_RANGE
    assert len(rates) == 3 and all(low <= r <= high for r in rates), rates
    assert all(math.isfinite(loss) for loss in losses), losses


def test_the_papers_eval_pass_on_an_uncalibrated_batchnorm_net_warns_and_names_the_way_out():
    """mobilenet_v3_small at initialisation: the running statistics (0 and 1) make K_z ~ 1e-7 and the rate ~1e8."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match=r"epoch 0: the learning rate .* is outside .*batchnorm='batch'"):
        AdaptiveLR(optimizer, model, _batches(), num_classes=10, batchnorm="running")
