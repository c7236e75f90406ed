"""The practitioners' zoo: AdaptiveLR with its defaults trains the models people build from scratch.

Each model trains on a small real dataset (scikit-learn's digits as 32x32 images, or as 4-token sequences; its
diabetes set for a regressor) with ``AdaptiveLR(optimizer, model, loader, num_classes=...)`` and nothing else
but the loss's own arguments, and must *learn*: the last epoch's mean training loss below the first batch's,
every loss finite, every written rate finite and positive. Beside it the same model at a fixed momentum-SGD rate
(the control, 0.01) must learn too, so a failure is the scheduler's, not the set-up's. The models: torchvision
resnet18, vgg11_bn, mobilenet_v3_small and efficientnet_b0, a small BatchNorm CNN, timm resnet18, efficientnet_b0
and vit_tiny (not convnext_atto: in this set-up its control does not learn either), Hugging Face DistilBERT (SGD,
and AdamW with ``variant="adam"``) and BERT fed their own dict batches, an LSTM tagger (a head applied per token)
and an MSE regressor fed dict batches with integer targets. ``benchmarks/defaults_that_train.py`` measures the
same set-up at length (``results/defaults.md``).
"""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lipschitz_lr import AdaptiveLR

torchvision = pytest.importorskip("torchvision")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

EPOCHS = 3


def digit_images(n=128):
    data = sklearn_datasets.load_digits()
    x = torch.tensor(data.images[:n], dtype=torch.float32).unsqueeze(1) / 16.0
    x = nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return TensorDataset(x, torch.tensor(data.target[:n]))


def digit_tokens(n=96, classes=2):
    """The digits below ``classes`` as 2 x 2 = 4 tokens each (their 4 x 4 blocks' mean values 0-16), in batches of
    16 dicts."""
    data = sklearn_datasets.load_digits()
    keep = data.target < classes
    images = torch.tensor(data.images[keep][:n], dtype=torch.float32).unsqueeze(1)
    tokens = nn.functional.avg_pool2d(images, 4).round().long().flatten(1)
    labels = torch.tensor(data.target[keep][:n])
    batches = [(tokens[i : i + 16], labels[i : i + 16]) for i in range(0, len(labels), 16)]
    return [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": y} for x, y in batches]


def cross_entropy(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def hugging_face(model, batch):
    return model(**batch).loss


def learns(build, batches, loss_fn=cross_entropy, optimizer=None, in_order=None, control=0.01, **options):
    """Train ``build()`` with AdaptiveLR's defaults (``options``: the loss's own arguments), then the control
    (momentum SGD at the fixed rate ``control``); assert both learn. Returns the scheduler."""
    curves = {}
    for name in ("adaptive", "control"):
        torch.manual_seed(0)
        model = build()
        opt = torch.optim.SGD(model.parameters(), lr=control, momentum=0.9)
        scheduler = None
        if name == "adaptive":
            opt = optimizer(model.parameters()) if optimizer else torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = AdaptiveLR(opt, model, in_order if in_order is not None else batches, **options)
        first, epoch_means = None, []
        for _ in range(EPOCHS):
            model.train()
            values = []
            for batch in batches:
                opt.zero_grad()
                value = loss_fn(model, batch)
                value.backward()
                opt.step()
                values.append(float(value))
            first = values[0] if first is None else first
            epoch_means.append(sum(values) / len(values))
            if scheduler is not None:
                scheduler.step()
                assert all(math.isfinite(r.lr) and r.lr > 0 for r in scheduler.history), scheduler.history
        curves[name] = (first, epoch_means)
        assert all(math.isfinite(v) for v in epoch_means), (name, epoch_means)
        assert epoch_means[-1] < first, f"{name} did not learn: first batch {first:.4g}, epochs {epoch_means}"
        if name == "adaptive":
            result = scheduler
    return result


def image_loaders():
    dataset = digit_images()
    return DataLoader(dataset, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)), DataLoader(
        dataset, batch_size=32
    )


class SmallBNCNN(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16 * 16, 10),
        )  # fmt: skip


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn", "mobilenet_v3_small", "efficientnet_b0", "small_bn_cnn"])
def test_torchvision_nets_learn_with_the_defaults(name):
    training, in_order = image_loaders()
    build = SmallBNCNN if name == "small_bn_cnn" else lambda: getattr(torchvision.models, name)(num_classes=10)
    control = 0.003 if name == "vgg11_bn" else 0.01  # vgg11_bn's loss spikes at 0.01 (3.53 after 3 epochs)
    learns(build, training, in_order=in_order, control=control, num_classes=10)


def test_momentum_sgd_with_the_momentum_variant_learns():
    training, in_order = image_loaders()
    learns(
        lambda: torchvision.models.resnet18(num_classes=10),
        training,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        in_order=in_order,
        num_classes=10,
        variant="momentum",
    )


@pytest.mark.parametrize(
    ("name", "options", "head"),
    [
        ("resnet18", {}, "fc"),
        ("efficientnet_b0", {}, "classifier"),
        ("vit_tiny_patch16_224", {"img_size": 32}, "head"),
    ],
)
def test_timm_models_learn_with_the_defaults(name, options, head):
    timm = pytest.importorskip("timm")
    training, in_order = image_loaders()
    scheduler = learns(
        lambda: timm.create_model(name, pretrained=False, num_classes=10, **options),
        training,
        in_order=in_order,
        num_classes=10,
    )
    assert scheduler._head is scheduler._model.get_submodule(head)  # the output layer, found by the forward pass


@pytest.mark.parametrize(("optimizer", "variant"), [("sgd", "sgd"), ("adamw", "adam")])
def test_hugging_face_classifiers_learn_on_their_own_batches(optimizer, variant):
    """DistilBERT with SGD went NaN at the paper's 19.6 (held: 19.6 < 1e3, no warning); with AdamW and
    variant='adam' it stayed at chance and then K_z = 0 gave a NaN rate."""
    transformers = pytest.importorskip("transformers")
    config = transformers.DistilBertConfig(
        vocab_size=32, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=2, max_position_embeddings=64
    )
    build_optimizer = (lambda p: torch.optim.AdamW(p, lr=1e-3)) if optimizer == "adamw" else None
    scheduler = learns(
        lambda: transformers.DistilBertForSequenceClassification(config),
        digit_tokens(),
        loss_fn=hugging_face,
        optimizer=build_optimizer,
        num_classes=2,
        variant=variant,
    )
    assert scheduler._head is scheduler._model.classifier


def test_bert_learns_on_its_own_dict_batches():
    """BertForSequenceClassification failed deep inside ("'dict' object has no attribute 'size'")."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=2
    )
    scheduler = learns(
        lambda: transformers.BertForSequenceClassification(config), digit_tokens(), loss_fn=hugging_face, num_classes=2
    )
    assert scheduler._head is scheduler._model.classifier


class Tagger(nn.Module):
    """An LSTM tagger: a label per token, the head applied to (batch, tokens, features)."""

    def __init__(self, vocab=17, tags=2):
        super().__init__()
        self.embed, self.lstm, self.head = (
            nn.Embedding(vocab, 16),
            nn.LSTM(16, 24, batch_first=True),
            nn.Linear(24, tags),
        )

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])


def test_an_lstm_tagger_learns_with_a_per_token_m():
    """Each digit's 16 blocks as tokens, tagged ink (value > 8) or not: m counts every (example, token) row."""
    batches = [(b["input_ids"], (b["input_ids"] > 8).long()) for b in digit_tokens()]

    def per_token(model, batch):
        tokens, tags = batch
        return nn.functional.cross_entropy(model(tokens).flatten(0, 1), tags.flatten())

    scheduler = learns(Tagger, batches, loss_fn=per_token, num_classes=2)
    assert scheduler.history[0].k_z > 0


def test_an_mse_regressor_learns_on_dict_batches_with_integer_targets():
    """scikit-learn's diabetes, its progress score counted in steps of 25 (integer targets 1-13), which once left
    target_norm at 0 (40x the rate; NaN in the first epoch)."""
    data = sklearn_datasets.load_diabetes()
    x = torch.tensor(data.data[:192], dtype=torch.float32) * 10  # columns of norm 10 (about 0.5 per row)
    y = torch.tensor(data.target[:192] // 25).long().unsqueeze(1)
    batches = [{"x": x[i : i + 32], "y": y[i : i + 32]} for i in range(0, 192, 32)]

    def mse(model, batch):
        return 0.5 * nn.functional.mse_loss(model(batch["x"]), batch["y"].float())  # the bound's (1/2m)||a - y||^2

    learns(lambda: nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1)), batches, loss_fn=mse, loss="mse")


def test_the_papers_eval_pass_on_an_uncalibrated_batchnorm_net_warns_and_names_the_way_out():
    """mobilenet_v3_small at initialisation: the running statistics (0 and 1) make K_z ~ 1e-7 and the rate ~1e8."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _, in_order = image_loaders()
    with pytest.warns(RuntimeWarning, match=r"epoch 0: the learning rate .* is outside .*batchnorm='batch'"):
        AdaptiveLR(optimizer, model, in_order, num_classes=10, batchnorm="running", rule="paper", max_growth=None)
