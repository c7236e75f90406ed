"""Do AdaptiveLR's defaults train the nets practitioners build from scratch? (issue 30)

Two set-ups, each run with AdaptiveLR under several settings and beside a fixed-rate control:

``digits``: scikit-learn's digits (the first 256 images, upsampled to 32x32, three channels, real labels), batch
32, 3 epochs, plain SGD (``lr=0.1``, which AdaptiveLR overwrites), the nets of the issue: torchvision resnet18 and
vgg11_bn, a small BatchNorm CNN, resnet18 with momentum 0.9 (``variant="momentum"``), and a Hugging Face
DistilBERT classifier (dim 32, 2 layers, built from its config: no download) on the images' 64 pixels as tokens
(the digits 0-2, three labels), with SGD and with AdamW (``variant="adam"``). Printed per net and setting: the
first batch's loss, the mean training loss of each epoch, and the rate of each update (construction first).
The control is momentum SGD at a fixed 0.01.

``mnist``: 10,000 MNIST training images, the small BatchNorm CNN, batch 128, 5 epochs, plain SGD with AdaptiveLR,
against ``schedulefree.SGDScheduleFree`` at its defaults; test accuracy per epoch, with BatchNorm's statistics as
training left them and recalibrated (50 batches, at Schedule-Free's averaged weights for it).

The settings: ``before`` is the library's defaults until this issue (the paper's ``1/K``, no safeguards);
``paper + safeguards`` adds the growth limit and the back-off; ``smooth`` is the curvature rule alone;
``defaults`` is the library's defaults now (the curvature rule with the safeguards); ``+ warm-up`` adds a
one-epoch linear warm-up.

    python benchmarks/defaults_that_train.py digits --out results/defaults_digits.jsonl
    python benchmarks/defaults_that_train.py mnist --data-dir ../shared/data --seeds 0 1 \
        --settings before defaults --out results/defaults_mnist.jsonl
    python benchmarks/defaults_that_train.py table --out results/defaults_digits.jsonl   # the file, as a table
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lipschitz_lr import AdaptiveLR

SETTINGS: dict[str, dict | None] = {
    "before": {"rule": "paper", "max_growth": None, "backoff": None},
    "paper + safeguards": {"rule": "paper"},
    "smooth": {"rule": "smooth", "max_growth": None, "backoff": None},
    "defaults": {},
    "paper + safeguards + warm-up": {"rule": "paper", "warmup_epochs": 1},
    "defaults + warm-up": {"warmup_epochs": 1},
    "control": None,  # momentum SGD at a fixed 0.01
}


def digits(n: int = 256, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` of scikit-learn's digits with a label below ``classes``: (images in [0, 1], labels)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = data.target < classes
    images = torch.tensor(data.images[keep][:n], dtype=torch.float32) / 16.0
    return images, torch.tensor(data.target[keep][:n])


def image_batches(seed: int) -> tuple[TensorDataset, DataLoader, DataLoader]:
    images, labels = digits()
    x = nn.functional.interpolate(images.unsqueeze(1), size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    dataset = TensorDataset(x, labels)
    train = DataLoader(dataset, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return dataset, train, DataLoader(dataset, batch_size=32)


def token_batches(seed: int) -> tuple[list[dict], list[dict]]:
    """The digits 0-2 as 64-token sequences (pixel values 0-16), three labels; (training order, in order)."""
    images, labels = digits(n=256, classes=3)
    tokens = (images * 16).round().long().flatten(1)
    rows = [
        {
            "input_ids": tokens[i : i + 32],
            "attention_mask": torch.ones_like(tokens[i : i + 32]),
            "labels": labels[i : i + 32],
        }
        for i in range(0, len(labels), 32)
    ]
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    return [rows[i] for i in order], rows


class SmallBNCNN(nn.Sequential):
    """conv-BN-ReLU twice, a 2x2 pool, a linear head."""

    def __init__(self, channels: int = 3, size: int = 32, classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * (size // 2) ** 2, classes),
        )  # fmt: skip


def distilbert() -> nn.Module:
    import transformers

    config = transformers.DistilBertConfig(
        vocab_size=32, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=3, max_position_embeddings=64
    )
    return transformers.DistilBertForSequenceClassification(config)


def nets() -> dict[str, tuple]:
    """name -> (model builder, optimizer builder, AdaptiveLR options, batches kind)."""
    import torchvision

    sgd = lambda p: torch.optim.SGD(p, lr=0.1)  # noqa: E731
    return {
        "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), sgd, {"num_classes": 10}, "images"),
        "resnet18, momentum": (
            lambda: torchvision.models.resnet18(num_classes=10),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            {"num_classes": 10, "variant": "momentum"},
            "images",
        ),
        "vgg11_bn": (lambda: torchvision.models.vgg11_bn(num_classes=10), sgd, {"num_classes": 10}, "images"),
        "small BN CNN": (SmallBNCNN, sgd, {"num_classes": 10}, "images"),
        "distilbert, sgd": (distilbert, sgd, {"num_classes": 3}, "tokens"),
        "distilbert, adamw": (
            distilbert,
            lambda p: torch.optim.AdamW(p, lr=1e-3),
            {"num_classes": 3, "variant": "adam"},
            "tokens",
        ),
    }


def loss_of(model: nn.Module, batch) -> torch.Tensor:
    if isinstance(batch, dict):
        return model(**batch).loss
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def train(net: str, setting: str, seed: int = 0, epochs: int = 3) -> dict:
    """One net under one setting: the first batch's loss, the mean loss per epoch, the rates, the warnings."""
    build, optimizer_for, options, kind = nets()[net]
    torch.manual_seed(seed)
    model = build()
    if kind == "images":
        _, training, in_order = image_batches(seed)
    else:
        training, in_order = token_batches(seed)
    chosen = SETTINGS[setting]
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if chosen is None:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            scheduler = None
        else:
            optimizer = optimizer_for(model.parameters())
            scheduler = AdaptiveLR(optimizer, model, in_order, **options, **chosen)
        first, losses = None, []
        for _ in range(epochs):
            model.train()
            total, count = 0.0, 0
            for batch in training:
                optimizer.zero_grad()
                loss = loss_of(model, batch)
                first = float(loss) if first is None else first
                loss.backward()
                optimizer.step()
                total, count = total + float(loss), count + 1
            losses.append(total / count)
            if scheduler is not None:
                scheduler.step()
    rates = [record.lr for record in scheduler.history] if scheduler is not None else [0.01]
    notes = [record.note for record in scheduler.history] if scheduler is not None else []
    return {
        "net": net,
        "setting": setting,
        "seed": seed,
        "first_loss": first,
        "epoch_losses": losses,
        "rates": rates,
        "notes": notes,
        "trains": all(math.isfinite(v) for v in losses) and losses[-1] < first,
        "warnings": sorted({str(w.message).split(":")[0] for w in caught if issubclass(w.category, RuntimeWarning)}),
        "seconds": time.perf_counter() - started,
    }


def mnist_run(data_dir: str | None, seed: int, setting: str, epochs: int = 5) -> dict:
    """The small BN CNN on 10,000 MNIST images: AdaptiveLR under ``setting`` with plain SGD, or Schedule-Free SGD."""
    from lipschitz_lr_experiments.data import TensorBatches, load_dataset
    from lipschitz_lr_experiments.loop import evaluate, kept_batchnorm_statistics, recalibrate_batchnorm

    data = load_dataset("mnist", data_dir, train_subset=10_000)
    torch.manual_seed(seed)
    model = SmallBNCNN(channels=1, size=28)
    training = TensorBatches(data.train_images, data.train_labels, 128, shuffle=True,
                             generator=torch.Generator().manual_seed(seed))  # fmt: skip
    in_order = TensorBatches(data.train_images, data.train_labels, 128)
    scheduler, averaged = None, setting == "schedule-free sgd"
    if averaged:
        import schedulefree

        optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=1.0)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = AdaptiveLR(optimizer, model, in_order, num_classes=10, **SETTINGS[setting])
    as_trained, recalibrated, losses = [], [], []
    for _ in range(epochs):
        model.train()
        if averaged:
            optimizer.train()
        total = 0.0
        for x, y in training:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(training))
        if averaged:
            optimizer.eval()
        as_trained.append(evaluate(model, data.test_images, data.test_labels)[1])
        with kept_batchnorm_statistics(model):
            recalibrate_batchnorm(model, in_order)
            recalibrated.append(evaluate(model, data.test_images, data.test_labels)[1])
        if scheduler is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scheduler.step()
    rates = [record.lr for record in scheduler.history] if scheduler is not None else [1.0]
    return {"setting": setting, "seed": seed, "test_acc": as_trained, "test_acc_recalibrated": recalibrated,
            "epoch_losses": losses, "rates": rates}  # fmt: skip


def _fmt(values: list[float], digits: int = 3) -> str:
    return ", ".join(f"{v:.{digits}g}" for v in values)


DIGITS_HEADER = (
    "| net | setting | first-batch loss -> mean loss per epoch | lr per update (construction first) | notes | "
    "learns |\n|---|---|---|---|---|---|"
)
MNIST_HEADER = (
    "| setting | seed | test acc % per epoch (as trained) | recalibrated | mean training loss per epoch | "
    "lr per update |\n|---|---|---|---|---|---|"
)


def digits_line(row: dict) -> str:
    notes = " ".join(n or "-" for n in row["notes"]) or "-"
    return (
        f"| {row['net']} | {row['setting']} | {row['first_loss']:.3g} -> {_fmt(row['epoch_losses'])} | "
        f"{_fmt(row['rates'])} | {notes} | {'yes' if row['trains'] else 'no'} |"
    )


def mnist_line(row: dict) -> str:
    return (
        f"| {row['setting']} | {row['seed']} | {_fmt([100 * a for a in row['test_acc']], 4)} | "
        f"{_fmt([100 * a for a in row['test_acc_recalibrated']], 4)} | {_fmt(row['epoch_losses'])} | "
        f"{_fmt(row['rates'])} |"
    )


def table(path: Path) -> str:
    """The markdown table of a file this script wrote with ``--out`` (a rerun's line replaces an earlier one's)."""
    rows: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[(row.get("net"), row["setting"], row["seed"])] = row
    if not rows:
        raise SystemExit(f"{path}: no runs in it")
    digits_rows = next(iter(rows.values())).get("net") is not None
    header, line = (DIGITS_HEADER, digits_line) if digits_rows else (MNIST_HEADER, mnist_line)
    return "\n".join([header, *(line(row) for row in rows.values())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("setup", choices=("digits", "mnist", "table"), help="table: print --out's file as a table")
    parser.add_argument("--nets", nargs="+", help="digits: which nets (default all)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="default: all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, help="append each run as a JSON line")
    args = parser.parse_args()
    if args.setup == "table":
        if args.out is None:
            parser.error("table needs --out FILE, a file of runs this script wrote")
        print(table(args.out))
        return
    torch.set_num_threads(1)
    settings = args.settings or list(SETTINGS)
    if args.setup == "digits":
        print(DIGITS_HEADER)
        for net in args.nets or list(nets()):
            for setting in settings:
                if (SETTINGS[setting] or {}).get("rule") == "smooth" and nets()[net][2].get("variant") == "adam":
                    continue  # the curvature rule is for sgd and momentum; adam's rate is the paper's formula
                for seed in args.seeds:
                    row = train(net, setting, seed)
                    print(digits_line(row), flush=True)
                    _append(args.out, row)
    else:
        print(MNIST_HEADER)
        for setting in [*(s for s in settings if SETTINGS[s] is not None), "schedule-free sgd"]:
            for seed in args.seeds:
                row = mnist_run(args.data_dir, seed, setting)
                print(mnist_line(row), flush=True)
                _append(args.out, row)


def _append(path: Path | None, row: dict) -> None:
    if path is not None:
        with path.open("a") as file:
            file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
