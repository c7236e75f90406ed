"""The practitioners' zoo: AdaptiveLR with its defaults on the models people train, tiny random data, a few steps.

Every written rate must be finite and inside ``SANE_LR_RANGE``, no warning may be raised, and the loss must
stay finite: torchvision and timm image classifiers (BatchNorm, LayerNorm, a vision transformer), a Hugging Face
``BertForSequenceClassification`` built from a tiny config (no download) fed its own dict batches, an LSTM
tagger (a head applied per token) and an MSE regressor fed dict batches with integer targets.
"""

import math
import warnings

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.adaptive_lr import SANE_LR_RANGE

torchvision = pytest.importorskip("torchvision")


def _cross_entropy(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _train(model, batches, epochs=2, loss=_cross_entropy, optimizer=None, loss_name=None, **options):
    """Train with AdaptiveLR's defaults (only the loss's own arguments given); returns (rates, scheduler), the
    rates and losses checked: every rate inside the sane range, every loss finite, no RuntimeWarning (no guard,
    no absurd rate)."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    options = {"num_classes": 10, "variant": "momentum", **options}
    if loss_name is not None:
        options = {"loss": loss_name, "variant": "momentum", **{k: v for k, v in options.items() if k != "num_classes"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scheduler = AdaptiveLR(optimizer, model, batches, **options)
        losses = []
        for _ in range(epochs):
            model.train()
            for batch in batches:
                optimizer.zero_grad()
                value = loss(model, batch)
                value.backward()
                optimizer.step()
                losses.append(float(value.detach()))
            scheduler.step()
    rates = [record.lr for record in scheduler.history]
    low, high = SANE_LR_RANGE
    assert len(rates) == epochs + 1 and all(low <= r <= high for r in rates), rates
    assert all(math.isfinite(value) for value in losses), losses
    return rates, scheduler


def _batches(n=2, m=8, size=32):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(m, 3, size, size, generator=g), torch.randint(0, 10, (m,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_torchvision_batchnorm_nets_train_with_the_defaults(name):
    torch.manual_seed(0)
    _train(getattr(torchvision.models, name)(num_classes=10), _batches())


@pytest.mark.parametrize(
    ("name", "options", "head"),
    [
        ("resnet18", {}, "fc"),
        ("efficientnet_b0", {}, "classifier"),
        ("vit_tiny_patch16_224", {"img_size": 32}, "head"),
        ("convnext_atto", {}, "head.fc"),
    ],
)
def test_timm_models_train_with_the_defaults(name, options, head):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **options)
    _, scheduler = _train(model, _batches())
    assert scheduler._head is model.get_submodule(head)  # the output layer, found by the forward pass


def test_a_hugging_face_classifier_trains_on_its_own_batches():
    """BertForSequenceClassification failed deep inside ("'dict' object has no attribute 'size'")."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3
    )
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(0, 100, (4, 12), generator=g),
            "attention_mask": torch.ones(4, 12, dtype=torch.long),
            "labels": torch.randint(0, 3, (4,), generator=g),
        }
        for _ in range(2)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _, scheduler = _train(
        model, batches, loss=lambda m, b: m(**b).loss, optimizer=optimizer, num_classes=3, variant="adam"
    )
    assert scheduler._head is model.classifier


class Tagger(nn.Module):
    """An LSTM tagger: a label per token, the head applied to (batch, tokens, features)."""

    def __init__(self, vocab=50, tags=5):
        super().__init__()
        self.embed, self.lstm, self.head = (
            nn.Embedding(vocab, 16),
            nn.LSTM(16, 24, batch_first=True),
            nn.Linear(24, tags),
        )

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])


def test_an_lstm_tagger_trains_with_a_per_token_m():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 50, (4, 9), generator=g), torch.randint(0, 5, (4, 9), generator=g)) for _ in range(2)]

    def per_token(model, batch):
        tokens, tags = batch
        return nn.functional.cross_entropy(model(tokens).flatten(0, 1), tags.flatten())

    _train(Tagger(), batches, loss=per_token, num_classes=5)


def test_an_mse_regressor_trains_on_dict_batches_with_integer_targets():
    """Integer count targets left target_norm at 0 (40x the rate; NaN in the first epoch)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batches = [
        {"x": torch.randn(16, 6, generator=g), "y": torch.randint(0, 20, (16, 1), generator=g)} for _ in range(3)
    ]
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))

    def mse(model, batch):
        return 0.5 * nn.functional.mse_loss(model(batch["x"]), batch["y"].float())  # the bound's (1/2m)||a - y||^2

    rates, _ = _train(model, batches, loss=mse, loss_name="mse")
    assert rates[0] < 0.1  # with the targets' norm (about 200 per batch) in the bound


def test_the_papers_eval_pass_on_an_uncalibrated_batchnorm_net_warns_and_names_the_way_out():
    """mobilenet_v3_small at initialisation: the running statistics (0 and 1) make K_z ~ 1e-7 and the rate ~1e8."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match=r"epoch 0: the learning rate .* is outside .*batchnorm='batch'"):
        AdaptiveLR(optimizer, model, _batches(), num_classes=10, batchnorm="running")
