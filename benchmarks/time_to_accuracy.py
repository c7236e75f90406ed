"""Time to a target MNIST test accuracy (default 99.0%): LipschitzLR against tuned classic schedules.

For each schedule and seed, trains the MNIST CNN (the paper's protocol: batch 256, augmentation)
until the test accuracy first reaches the target or ``--max-epochs`` pass, and prints the epochs
and seconds it took, averaged over the seeds. The baselines' learning rates default to values from a
``lipschitz-lr sweep`` (set them with ``--lr``); the reported numbers are only as good as that tuning.

    python benchmarks/time_to_accuracy.py --device cuda --seeds 0 1 2
    python benchmarks/time_to_accuracy.py --train-subset 2048 --max-epochs 1 --target 0.5   # smoke run
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import load_dataset
from lipschitz_lr_experiments.devices import describe_device, resolve_device
from lipschitz_lr_experiments.schedules import SCHEDULES, run_length_args
from lipschitz_lr_experiments.train import RunOptions, Trainer

# schedule -> (config, overrides)
METHODS = {
    "lipschitz (momentum)": ("mnist_momentum", {}),
    "lipschitz (adam)": ("mnist_adam", {}),
    "constant": ("mnist_momentum_baseline", {}),
    # Classic schedules are fitted to --max-epochs in main() (run_length_args): step decay x0.1 every third.
    "step": ("mnist_momentum_baseline", {"schedule": "step"}),
    "cosine": ("mnist_momentum_baseline", {"schedule": "cosine"}),
    "onecycle": ("mnist_momentum_baseline", {"schedule": "onecycle"}),
}


def run_until(config, data, target: float, device: str) -> tuple[int | None, float]:
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            config, RunOptions(out_dir=Path(out), device=device, progress=False, tensorboard=False), data=data
        )

        trainer.options.on_epoch_end = lambda epoch: trainer.history[-1]["test_acc"] >= target
        trainer.run()
        seconds = sum(row["seconds"] for row in trainer.history)
        reached = trainer.history[-1]["test_acc"] >= target
        return (len(trainer.history) if reached else None), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=0.05, help="the baselines' (tuned) learning rate")
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
    print(
        f"# MNIST CNN to {100 * args.target:.1f}% test accuracy, {describe_device(device)}, seeds {args.seeds}, "
        f"at most {args.max_epochs} epochs, baseline lr {args.lr}"
    )
    rows = [
        "| schedule | reached (seeds) | epochs (mean) | seconds (mean) | epochs per seed |",
        "|---|---|---|---|---|",
    ]
    for method in args.methods:
        config_name, overrides = METHODS[method]
        epochs, seconds, per_seed = [], [], []
        for seed in args.seeds:
            changes = {"epochs": args.max_epochs, "seed": seed, "train_subset": args.train_subset, **overrides}
            if "baseline" in config_name:
                changes["lr"] = args.lr
            config = load_config(config_name).replace(**changes)
            if SCHEDULES[config.schedule].build is not None:
                steps_per_epoch = math.ceil(data.train_labels.shape[0] / config.batch_size)
                fitted = run_length_args(config.schedule, args.max_epochs, steps_per_epoch)
                config = config.replace(schedule_args={**fitted, **config.schedule_args})
            reached, spent = run_until(config, data, args.target, str(device))
            # One line per run as it ends, so a long benchmark shows its progress (and partial results).
            outcome = f"reached at epoch {reached}" if reached is not None else f"not reached in {args.max_epochs}"
            print(f"# {method}, seed {seed}: {outcome} ({spent:.1f} s)", flush=True)
            per_seed.append(str(reached) if reached is not None else "-")
            if reached is not None:
                epochs.append(reached)
                seconds.append(spent)
        mean_epochs = f"{statistics.mean(epochs):.1f}" if epochs else "-"
        mean_seconds = f"{statistics.mean(seconds):.1f}" if seconds else "-"
        reached_count = f"{len(epochs)}/{len(args.seeds)}"
        rows.append(f"| {method} | {reached_count} | {mean_epochs} | {mean_seconds} | {', '.join(per_seed)} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
