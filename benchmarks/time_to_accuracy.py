"""Time to a target MNIST test accuracy (default 99.0%): LipschitzLR against tuned classic schedules,
with the cost of the tuning counted.

For each method and seed, trains the MNIST CNN with the paper's protocol (the authors' model and
Keras loss, batch 256, augmentation) until the test accuracy first reaches the target or
``--max-epochs`` pass, and prints the epochs and seconds it took. LipschitzLR (the faithful
``mnist_sgd``, ``mnist_sgd_hook``, ``mnist_momentum``, ``mnist_adam`` configs) needs no learning rate.
The baselines (momentum SGD with a constant rate, step decay, cosine, one-cycle, whose peak is the
tuned rate) do: with ``--sweep-lrs`` each baseline first trains seed 0 at every listed rate, keeps
the one that reaches the target in the fewest epochs (a later rate is stopped once it cannot win),
and the table adds the epochs that sweep trained and the total. LipschitzLR's claim is that it
needs no sweep, so the fair figure is that total. The tuned rate's seed-0 run is the sweep's own.
Without ``--sweep-lrs`` the baselines use ``--lr`` and the sweep columns read "-".

``--record FILE`` keeps every finished run (JSON lines) and reads it back instead of training
again: processes with different ``--methods`` can share one file, a stopped run resumes, and
``--no-train`` prints the table from the file (runs it lacks read "not run").

    python benchmarks/time_to_accuracy.py --device cuda --seeds 0 1 2 --sweep-lrs 0.01 0.02 0.05 0.1 0.2
    python benchmarks/time_to_accuracy.py --train-subset 2048 --max-epochs 1 --target 0.5   # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import torch

from lipschitz_lr_experiments.config import ExperimentConfig, load_config
from lipschitz_lr_experiments.data import DataSplits, TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import describe_device, resolve_device
from lipschitz_lr_experiments.loop import evaluate, train_step
from lipschitz_lr_experiments.models import build_model
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


class RunLog:
    """Finished runs, kept in memory and, with ``--record``, appended to a JSON-lines file.

    A run already in the file is read back instead of trained again, so a long benchmark can be
    split across processes (each with its own ``--methods``, one shared file), resumed after a stop,
    and its table printed from the file alone (``--no-train``). Each line holds one run's key
    (method, seed, lr, max_epochs, target, train_subset), its outcome and its per-epoch test accuracy.
    The device is recorded but is no part of the key: keep one file per device.
    """

    KEY = ("method", "seed", "lr", "max_epochs", "target", "train_subset")

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.runs: dict[tuple, dict] = {}
        if path is not None and path.exists():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    try:
                        run = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise SystemExit(f"{path}:{number} is not a JSON line ({error}); fix or remove it") from None
                    self.runs[self.key(run)] = run

    def key(self, run: dict) -> tuple:
        return tuple(run[name] for name in self.KEY)

    def find(self, key: dict, cap: int) -> dict | None:
        """A recorded run that answers ``key`` within ``cap`` epochs: it reached the target, or trained that far."""
        run = self.runs.get(self.key(key))
        if run is None or not (run["reached"] is not None or run["trained"] >= cap):
            return None
        return run

    def add(self, run: dict) -> None:
        self.runs[self.key(run)] = run
        if self.path is not None:
            with self.path.open("a") as file:
                file.write(json.dumps(run) + "\n")  # one write per run: processes may share the file


def run_until(config: ExperimentConfig, data: DataSplits, target: float, device: str, cap: int) -> dict:
    """Train until the test accuracy reaches ``target`` or ``cap`` epochs pass (the config's schedule
    still spans its own ``epochs``): the epoch it was reached (or None), epochs trained, seconds."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            config, RunOptions(out_dir=Path(out), device=device, progress=False, tensorboard=False), data=data
        )
        trainer.options.on_epoch_end = lambda epoch: (
            trainer.history[-1]["test_acc"] >= target or len(trainer.history) >= cap
        )
        trainer.run()
        accuracy = [row["test_acc"] for row in trainer.history]
        return {
            "reached": len(accuracy) if accuracy[-1] >= target else None,
            "trained": len(accuracy),
            "seconds": sum(row["seconds"] for row in trainer.history),
            "test_acc": accuracy,
        }


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


class Runner:
    """Runs (or recalls from the log) one method at one seed and rate."""

    def __init__(self, args: argparse.Namespace, data: DataSplits | None, device: str, log: RunLog) -> None:
        self.args, self.data, self.device, self.log = args, data, device, log

    def __call__(self, method: str, seed: int, lr: float | None, cap: int | None = None) -> dict | None:
        """The run's outcome; None under ``--no-train`` when the log does not hold it."""
        args = self.args
        cap = args.max_epochs if cap is None else cap
        key = {
            "method": method,
            "seed": seed,
            "lr": lr,
            "max_epochs": args.max_epochs,
            "target": args.target,
            "train_subset": args.train_subset,
        }
        run = self.log.find(key, cap)
        if run is None and self.data is not None:
            config = method_config(method, args, self.data, seed, lr)
            outcome = run_until(config, self.data, args.target, self.device, cap)
            run = {**key, "cap": cap, "device": self.device, **outcome}
            self.log.add(run)
        return run


def sweep(method: str, args: argparse.Namespace, runner: Runner) -> tuple[float | None, int | None]:
    """Tune ``method``'s rate on seed 0: (the rate, the epochs the sweep trained), or Nones if not all run.

    Rates are tried in the order listed; the fewest epochs to the target wins, a tie going to the
    rate listed first. So once a rate has reached the target at epoch b, each later rate is stopped
    after b - 1 epochs (it cannot win after that), and the sweep's cost is the epochs it trained.
    """
    best: tuple[float, int, float] | None = None  # (epoch reached, position, rate)
    spent = 0
    for position, candidate in enumerate(args.sweep_lrs):
        cap = args.max_epochs if best is None or best[0] == math.inf else int(best[0]) - 1
        if cap < 1:
            continue
        run = runner(method, 0, candidate, cap)
        if run is None:
            return None, None
        reached = run["reached"] if run["reached"] is not None and run["reached"] <= cap else None
        trained = min(run["trained"], cap)  # a recorded run may have gone on longer
        print(f"# sweep {method}, lr {candidate}: {reached or 'not reached'} ({trained} epochs)", flush=True)
        spent += trained
        trial = (reached if reached is not None else math.inf, position, candidate)
        best = trial if best is None else min(best, trial)
    return (best[2] if best is not None else None), spent


def _show(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def warm_up(device: torch.device, data: DataSplits) -> None:
    """On a GPU, pay CUDA's one-time costs (context, cuDNN handles and algorithm choices, the allocator's
    first blocks) before the first timed run, so that the first method's seconds are not inflated."""
    if device.type != "cuda":
        return
    model = build_model("mnist_cnn", 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    for x, y in TensorBatches(data.train_images[:512], data.train_labels[:512], 256):
        train_step(model, optimizer, scaler, x, y)
    evaluate(model, data.test_images[:1000], data.test_labels[:1000])
    torch.cuda.synchronize(device)


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
    parser.add_argument("--record", type=Path, help="JSON-lines file of finished runs: read back, appended to")
    parser.add_argument("--no-train", action="store_true", help="print the table from --record alone")
    args = parser.parse_args()
    if args.max_epochs < 1:
        parser.error(f"requires a positive --max-epochs, got {args.max_epochs}")
    if args.no_train and args.record is None:
        parser.error("--no-train prints the table from --record FILE; give the file")
    device = resolve_device(args.device)
    data = None
    if not args.no_train:
        data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
        warm_up(device, data)
    runner = Runner(args, data, str(device), RunLog(args.record))
    tuning = f"baselines tuned over {args.sweep_lrs} on seed 0" if args.sweep_lrs else f"baseline lr {args.lr}"
    where = f"from {args.record}" if args.no_train else describe_device(device)
    print(
        f"# MNIST CNN to {100 * args.target:.1f}% test accuracy, {where}, seeds {args.seeds}, "
        f"at most {args.max_epochs} epochs, {tuning}",
        flush=True,
    )
    rows = [
        "| method | lr | reached (seeds run) | epochs (mean) | seconds (mean) | sweep epochs | epochs with sweep "
        "| per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in args.methods:
        tuned = METHODS[method][0].endswith("_baseline")
        lr, sweep_epochs = (args.lr if tuned else None), (None if tuned else 0)  # LipschitzLR has no rate to tune
        if tuned and args.sweep_lrs:
            lr, sweep_epochs = sweep(method, args, runner)
            if lr is None:
                rows.append(f"| {method} | sweep not run | | | | | | |")
                continue
        epochs, seconds, per_seed = [], [], []
        for seed in args.seeds:
            run = runner(method, seed, lr)
            if run is None:
                per_seed.append("not run")
                continue
            reached = run["reached"]
            outcome = f"reached at epoch {reached}" if reached is not None else f"not reached in {run['trained']}"
            print(f"# {method}, seed {seed}: {outcome} ({run['seconds']:.1f} s)", flush=True)
            per_seed.append(str(reached) if reached is not None else "-")
            if reached is not None:
                epochs.append(reached)
                seconds.append(run["seconds"])
        mean_epochs = statistics.mean(epochs) if epochs else None
        total = None if mean_epochs is None or sweep_epochs is None else sweep_epochs + mean_epochs
        cells = [
            method,
            _show(lr, "{:g}"),
            f"{len(epochs)}/{len(args.seeds) - per_seed.count('not run')}",  # of the runs made
            _show(mean_epochs),
            _show(statistics.mean(seconds) if seconds else None),
            _show(sweep_epochs, "{}"),
            _show(total),
            ", ".join(per_seed),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
