"""Time to a target MNIST test accuracy (default 99.0%): LipschitzLR against tuned classic schedules,
with the cost of the tuning counted.

For each method and seed, trains the MNIST CNN with the paper's protocol (the authors' model and
Keras loss, batch 256, augmentation) until the test accuracy first reaches the target or
``--max-epochs`` pass, and prints the epochs and seconds it took. LipschitzLR (the faithful
``mnist_sgd``, ``mnist_sgd_hook``, ``mnist_momentum``, ``mnist_adam`` configs) needs no learning rate.
The baselines (momentum SGD with a constant rate, step decay, cosine, one-cycle, whose peak is the
tuned rate) do: with ``--sweep-lrs`` each baseline first trains seed 0 at every listed rate, keeps
the one that reaches the target in the fewest epochs, and the table adds the epochs that sweep cost
and the total. LipschitzLR's claim is that it needs no sweep, so the fair figure is that total.
Without ``--sweep-lrs`` the baselines use ``--lr`` and the sweep columns read "-".

    python benchmarks/time_to_accuracy.py --device cuda --seeds 0 1 2 --sweep-lrs 0.01 0.02 0.05 0.1 0.2
    python benchmarks/time_to_accuracy.py --train-subset 2048 --max-epochs 1 --target 0.5   # smoke run
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

from lipschitz_lr_experiments.config import ExperimentConfig, load_config
from lipschitz_lr_experiments.data import DataSplits, load_dataset
from lipschitz_lr_experiments.devices import describe_device, resolve_device
from lipschitz_lr_experiments.schedules import SCHEDULES, run_length_args
from lipschitz_lr_experiments.train import RunOptions, Trainer

# method -> (config, overrides). Classic schedules are fitted to --max-epochs (run_length_args).
METHODS = {
    "lipschitz (sgd)": ("mnist_sgd", {}),
    "lipschitz (sgd, hook)": ("mnist_sgd_hook", {}),
    "lipschitz (momentum)": ("mnist_momentum", {}),
    "lipschitz (adam)": ("mnist_adam", {}),
    "constant": ("mnist_momentum_baseline", {}),
    "step": ("mnist_momentum_baseline", {"schedule": "step"}),
    "cosine": ("mnist_momentum_baseline", {"schedule": "cosine"}),
    "onecycle": ("mnist_momentum_baseline", {"schedule": "onecycle"}),
}


def run_until(config: ExperimentConfig, data: DataSplits, target: float, device: str) -> tuple[int | None, float, int]:
    """Train until the test accuracy reaches ``target``: (epoch reached or None, seconds, epochs trained)."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            config, RunOptions(out_dir=Path(out), device=device, progress=False, tensorboard=False), data=data
        )
        trainer.options.on_epoch_end = lambda epoch: trainer.history[-1]["test_acc"] >= target
        trainer.run()
        seconds = sum(row["seconds"] for row in trainer.history)
        reached = trainer.history[-1]["test_acc"] >= target
        return (len(trainer.history) if reached else None), seconds, len(trainer.history)


def method_config(
    method: str, args: argparse.Namespace, data: DataSplits, seed: int, lr: float | None
) -> ExperimentConfig:
    config_name, overrides = METHODS[method]
    changes = {"epochs": args.max_epochs, "seed": seed, "train_subset": args.train_subset, **overrides}
    if lr is not None:
        changes["lr"] = lr
    config = load_config(config_name).replace(**changes)
    if SCHEDULES[config.schedule].build is not None:
        steps_per_epoch = math.ceil(data.train_labels.shape[0] / config.batch_size)
        fitted = run_length_args(config.schedule, args.max_epochs, steps_per_epoch)
        config = config.replace(schedule_args={**fitted, **config.schedule_args})
    return config


def _show(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=0.05, help="the baselines' rate without --sweep-lrs")
    parser.add_argument("--sweep-lrs", type=float, nargs="+", help="tune each baseline's rate on seed 0 first")
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
    tuning = f"baselines tuned over {args.sweep_lrs} on seed 0" if args.sweep_lrs else f"baseline lr {args.lr}"
    print(
        f"# MNIST CNN to {100 * args.target:.1f}% test accuracy, {describe_device(device)}, seeds {args.seeds}, "
        f"at most {args.max_epochs} epochs, {tuning}"
    )
    rows = [
        "| method | lr | reached (seeds) | epochs (mean) | seconds (mean) | sweep epochs | epochs with sweep "
        "| per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in args.methods:
        tuned = METHODS[method][0].endswith("_baseline")
        lr, sweep_epochs = (args.lr if tuned else None), None
        if tuned and args.sweep_lrs:
            trials = []
            for candidate in args.sweep_lrs:
                reached, spent, trained = run_until(
                    method_config(method, args, data, 0, candidate), data, args.target, str(device)
                )
                print(
                    f"# sweep {method}, lr {candidate}: {reached or 'not reached'} ({trained} epochs, {spent:.1f} s)",
                    flush=True,
                )
                # fewest epochs wins; a tie goes to the rate listed first (deterministic, unlike seconds)
                trials.append((reached if reached is not None else math.inf, len(trials), candidate, trained))
            sweep_epochs = sum(trial[3] for trial in trials)
            lr = min(trials)[2]
        epochs, seconds, per_seed = [], [], []
        for seed in args.seeds:
            reached, spent, _ = run_until(method_config(method, args, data, seed, lr), data, args.target, str(device))
            outcome = f"reached at epoch {reached}" if reached is not None else f"not reached in {args.max_epochs}"
            print(f"# {method}, seed {seed}: {outcome} ({spent:.1f} s)", flush=True)
            per_seed.append(str(reached) if reached is not None else "-")
            if reached is not None:
                epochs.append(reached)
                seconds.append(spent)
        mean_epochs = statistics.mean(epochs) if epochs else None
        sweep = sweep_epochs if tuned else 0  # LipschitzLR has no rate to tune
        total = None if mean_epochs is None or sweep is None else sweep + mean_epochs
        cells = [
            method,
            _show(lr, "{:g}"),
            f"{len(epochs)}/{len(args.seeds)}",
            _show(mean_epochs),
            _show(statistics.mean(seconds) if seconds else None),
            _show(sweep, "{}"),
            _show(total),
            ", ".join(per_seed),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
