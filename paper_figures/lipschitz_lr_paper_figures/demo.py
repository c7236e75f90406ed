"""The README's main job: the paper's LipschitzLR SGD, our best no-tuning LipschitzLR and the paper's fixed-rate
SGD on MNIST, on CPU, evaluated alike.

The three runs use the authors' MNIST CNN (he_normal convolutions), their Keras-clipped cross-entropy, batch 256
and their augmentation, on a subset of MNIST (default: 6,000 training images, 3 epochs, every test image), so
that they finish in about three minutes on a 2-core CPU:

* ``mnist_sgd``: the paper's LipschitzLR SGD, ``lr = 1/K`` from the initial weights at epoch 0 and every epoch
  after (``MNIST/MNIST.ipynb``);
* ``mnist_sgd_averaged``: the same rates with a one-epoch warm-up, evaluated at the weights' moving average
  (decay 0.995): the best configuration without tuning of the head-to-head (``results/benchmarks.md``, beyond
  the paper);
* ``mnist_sgd_baseline``: SGD at the paper's fixed 0.01.

Each is evaluated the same way: BatchNorm's statistics recalibrated over 50 training batches at the evaluated
weights (the history's ``test_acc``; ``test_acc_as_trained`` is the paper's way). Writes each run's history,
checkpoint and summary under ``--out`` and a figure ``--out/demo.png`` (learning rate, accuracy, loss).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import DatasetUnavailable, load_dataset
from lipschitz_lr_experiments.devices import resolve_device
from lipschitz_lr_experiments.history import best_epoch
from lipschitz_lr_experiments.loop import RECALIBRATION_BATCHES
from lipschitz_lr_experiments.train import RunOptions, Trainer

from .plots import METHOD_COLOURS, plot_comparison

#: (config, label, the head-to-head's name for it) of each run, in the order they train.
RUNS = (
    ("mnist_sgd", "LipschitzLR (SGD, paper)", "lipschitz (sgd)"),
    ("mnist_sgd_averaged", "LipschitzLR + warm-up + average", "sgd + warm-up + average"),
    ("mnist_sgd_baseline", "SGD, fixed lr 0.01", None),
)
#: The head-to-head's record (results/benchmarks.md, section d): all 60,000 images, seeds 0-2.
RECORD = Path(__file__).resolve().parents[2] / "results" / "time_to_accuracy.jsonl"


def record_lines(record: Path = RECORD) -> list[str]:
    """What the head-to-head's record says of the demo's LipschitzLR runs over their seeds, under the demo's
    evaluation (BatchNorm recalibrated over 50 batches): epochs to 99% and best test accuracy, mean over seeds."""
    if not record.exists():
        return []
    runs = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    lines = []
    for _, label, method in RUNS:
        mine = [r for r in runs if r["method"] == method and r.get("bn_recalibration") == RECALIBRATION_BATCHES]
        mine = list({r["seed"]: r for r in mine if r["stop"] == "best"}.values())  # the last record of each seed
        if not mine:
            continue
        to_99 = [next((i + 1 for i, a in enumerate(r["test_acc"]) if a >= 0.99), None) for r in mine]
        reached = [e for e in to_99 if e is not None]
        best = statistics.mean(100 * max(r["test_acc"]) for r in mine)
        seeds = ", ".join(str(r["seed"]) for r in mine)
        epochs = f"99% in {statistics.mean(reached):.1f} epochs" if reached else "99% not reached"
        lines.append(f"{label}: {epochs} (reached on {len(reached)} of seeds {seeds}), best {best:.2f}% (mean)")
    return lines


def summary_lines(runs: dict[str, list[dict]], images: int, steps: int | None = None) -> list[str]:
    """Who is ahead in the demo's own numbers, what LipschitzLR chose, then the record's full runs. ``steps``: the
    optimizer steps each run took (to say how much of the average's span they fill)."""
    bests = {label: (best_epoch(history) or {"test_acc": 0.0})["test_acc"] for label, history in runs.items()}
    ranked = sorted(bests, key=bests.get, reverse=True)
    others = ", ".join(f"{label} {100 * bests[label]:.2f}%" for label in ranked[1:])
    lines = [f"After {len(runs[ranked[0]])} epochs on {images} images, {ranked[0]} is ahead "
             f"({100 * bests[ranked[0]]:.2f}%; {others})."]  # fmt: skip
    paper, baseline = runs[RUNS[0][1]], runs[RUNS[-1][1]]
    rates = [row["lr"] for row in paper]
    ratios = [rate / baseline[0]["lr"] for rate in rates]
    lines.append(
        f"LipschitzLR chose its rates itself from the network ({', '.join(f'{r:.3g}' for r in rates)}; no tuning): "
        f"steps {min(ratios):.0f}-{max(ratios):.0f} times the baseline's. Its first epoch is rough (the authors' own "
        "MNIST log shows 23.9% test accuracy after it). The warm-up and the average are ours, beyond the paper."
    )
    decay = load_config(RUNS[1][0]).weight_average
    if steps and decay and ranked[0] != RUNS[1][1]:
        lines.append(
            f"The moving average (decay {decay:g}) spans about {1 / (1 - decay):.0f} optimizer steps and this demo "
            f"trains {steps}, so it still carries the first, rough epoch's weights; a full MNIST epoch is 235 steps."
        )
    recorded = record_lines()
    if recorded:
        lines.append(
            "On all 60,000 images, at most 10 epochs (results/time_to_accuracy.jsonl, section d2 of "
            "results/benchmarks.md): " + "; ".join(recorded) + "."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, help="datasets in torchvision's layout (default $LIPSCHITZ_LR_DATA, else data/)"
    )
    parser.add_argument("--no-download", action="store_true", help="refuse instead of downloading a missing MNIST")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=6000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = resolve_device(args.device)
    try:
        data = load_dataset(
            "mnist", args.data_dir, device=device, download=not args.no_download, train_subset=args.train_subset
        )
    except DatasetUnavailable as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    runs = {}
    for config_name, label, _ in RUNS:
        config = load_config(config_name).replace(
            epochs=args.epochs, train_subset=args.train_subset, bn_recalibration=RECALIBRATION_BATCHES
        )
        options = RunOptions(  # the demo replaces its own previous output
            out_dir=args.out / config_name,
            device=str(device),
            progress=not args.no_progress,
            tensorboard=False,
            overwrite=True,
        )
        trainer = Trainer(config, options, data=data)
        runs[label] = trainer.run()
        steps = len(trainer.train_loader) * len(runs[label])
    colours = dict(
        zip(
            (label for _, label, _ in RUNS),
            (METHOD_COLOURS["lipschitz"], METHOD_COLOURS["lipschitz_averaged"], METHOD_COLOURS["constant"]),
            strict=True,
        )
    )
    paths = plot_comparison(
        runs,
        args.out / "demo",
        f"MNIST CNN, {args.train_subset} training images, {args.epochs} epochs, {device.type}; test accuracy with "
        f"BatchNorm recalibrated over {RECALIBRATION_BATCHES} batches, for every run",
        colours,
        formats=("png",),
    )
    print()
    for label, history in runs.items():
        best = best_epoch(history) or history[-1]
        lrs = ", ".join(f"{row['lr']:.3g}" for row in history)
        print(
            f"{label:32s} best test accuracy {100 * best['test_acc']:.2f}% (epoch {best['epoch']}), "
            f"learning rate per epoch {lrs}"
        )
    print("\n".join(summary_lines(runs, args.train_subset, steps)))
    print(f"histories under {args.out}/, figure {paths[0]}; wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
