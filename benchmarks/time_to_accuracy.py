"""Time to a target MNIST test accuracy (default 99.0%): LipschitzLR against tuned classic schedules,
with the cost of the tuning counted, and against the learning-rate-free peers at their defaults.

For each method and seed, trains the MNIST CNN with the paper's protocol (the authors' model and
Keras loss, batch 256, augmentation) until the test accuracy first reaches the target or
``--max-epochs`` pass, and prints the epochs and seconds it took. LipschitzLR (the faithful
``mnist_sgd``, ``mnist_sgd_hook``, ``mnist_momentum``, ``mnist_adam`` configs) needs no learning rate.
The baselines (momentum SGD with a constant rate, step decay, cosine, one-cycle, whose peak is the
tuned rate) do: with ``--sweep-lrs`` each baseline first trains seed 0 at every listed rate, keeps
the one that reaches the target in the fewest epochs (a later rate is stopped once it cannot win),
and the table adds the epochs that sweep trained and the total. LipschitzLR's claim is that it
needs no sweep, so the fair figure is that total. Sweep runs always stop at the first ``--report``
target; under ``--stop target`` the tuned rate's seed-0 run is the sweep's own, under ``--stop best``
it is trained again under that rule (the sweep's cost is still counted once).
Without ``--sweep-lrs`` the baselines use ``--lr`` and the sweep columns read "-". The peers
(D-Adaptation, Prodigy, Schedule-Free, DoG with its averager, MoMo, COCOB; configs
``mnist_<optimizer>``) run at their packages' defaults and, like LipschitzLR, need no sweep.

``--stop target`` (the default) ends a run when it first reaches ``--target``; ``--stop best`` when it
has reached ``--target`` and its best epoch is behind it (the latest epoch is not its best), so the
best accuracy and later targets (``--report 0.99 0.993``) are seen too. Either way at most
``--max-epochs``. Each run records its per-epoch test accuracy and learning rate (a peer's own step
size: D-Adaptation's and Prodigy's ``d * lr``, DoG's ``eta``, MoMo's mean ``tau``; Schedule-Free and
DoG are evaluated at their averaged weights), and its seconds: the epochs' (LipschitzLR's per-epoch pass
included) plus the set-up (LipschitzLR's epoch-0 pass), recorded apart as ``setup_seconds``.

``--record FILE`` keeps every finished run (JSON lines) and reads it back instead of training
again: processes with different ``--methods`` or ``--seeds`` can share one file (one line per run,
appended in one write), and ``--no-train`` prints the table from the file (runs it lacks read "not
run"). A run in progress keeps its checkpoint under ``--work-dir`` (default ``FILE.runs/``): a process
stopped mid-run resumes it after its last finished epoch, so a benchmark can be split, stopped,
resumed and added to over days; the run's folder is removed once its line is written.

    python benchmarks/time_to_accuracy.py --device cuda --seeds 0 1 2 --sweep-lrs 0.01 0.02 0.05 0.1 0.2
    python benchmarks/time_to_accuracy.py --train-subset 2048 --max-epochs 1 --target 0.5   # smoke run
    # the peers' head-to-head (results/benchmarks.md, section d)
    python benchmarks/time_to_accuracy.py --device cpu --seeds 0 1 2 --max-epochs 10 --stop best \
        --target 0.993 --report 0.99 0.993 --methods prodigy dog --record results/peers.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import ClassVar

import torch
from time_to_accuracy_report import as_trained, draw, first_epoch, rate_table, table, total_seconds

from lipschitz_lr_experiments.config import ExperimentConfig, load_config
from lipschitz_lr_experiments.data import DataSplits, TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import describe_device, resolve_device
from lipschitz_lr_experiments.loop import evaluate, train_step
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.optimizers import OPTIMIZERS
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
    "lipschitz (sgd, hook every 47 steps)": ("mnist_sgd_hook_steps", {}),
    # the learning-rate-free peers, each at its package's defaults (the configs say which): every optimiser of the
    # registry with a label, from its config mnist_<name>
    **{spec.label: (f"mnist_{name}", {}) for name, spec in OPTIMIZERS.items() if spec.label},
    # no-tuning candidates beyond the paper (issue 22), one to three changes to a faithful config, screened on seed 0
    "sgd + warm-up": ("mnist_sgd_preset", {}),  # the no-tuning preset: mnist_sgd with a one-epoch warm-up
    "sgd + batch bn": ("mnist_sgd", {"schedule_args": {"batchnorm": "batch"}}),
    "sgd + torch ce": ("mnist_sgd", {"loss": "cross_entropy"}),
    "sgd + warm-up + hook every 47": ("mnist_sgd_hook_steps", {"schedule_args": {"warmup_epochs": 1}}),
    "adamo + warm-up": ("mnist_momentum", {"schedule_args": {"warmup_epochs": 1}}),
    "adam + bias correction": ("mnist_adam", {"schedule_args": {"bias_correction": True}}),
    "sgd + warm-up + batch bn": ("mnist_sgd", {"schedule_args": {"warmup_epochs": 1, "batchnorm": "batch"}}),
    # the library's own defaults (batch statistics, torch's cross-entropy) without and with the warm-up
    "sgd + batch bn + torch ce": ("mnist_sgd", {"loss": "cross_entropy", "schedule_args": {"batchnorm": "batch"}}),
    "sgd + warm-up + batch bn + torch ce": (
        "mnist_sgd",
        {"loss": "cross_entropy", "schedule_args": {"warmup_epochs": 1, "batchnorm": "batch"}},
    ),
    # LipschitzLR with averaging (issue 31), beyond the paper: the weights' moving average evaluated (decay 0.995,
    # about 200 steps, under an epoch); Schedule-Free SGD whose lr LipschitzLR sets to 1/K each epoch; the rate
    # growing at most 2x between epochs (the config's lr is the first rate's anchor: 1000 leaves epoch 0 its 1/K),
    # alone and with the average; the preset with the average
    "sgd + average": ("mnist_sgd", {"weight_average": 0.995}),
    "schedule-free sgd at 1/k": ("mnist_schedulefree_sgd", {"schedule": "lipschitz"}),
    "sgd + growth x2": ("mnist_sgd", {"lr": 1000.0, "schedule_args": {"max_growth": 2.0}}),
    "sgd + growth x2 + average": (
        "mnist_sgd",
        {"lr": 1000.0, "weight_average": 0.995, "schedule_args": {"max_growth": 2.0}},
    ),
    "sgd + warm-up + average": ("mnist_sgd_preset", {"weight_average": 0.995}),
}
STOPS = ("target", "best")


class RunLog:
    """Finished runs, kept in memory and, with ``--record``, appended to a JSON-lines file.

    A run already in the file is read back instead of trained again, so a long benchmark can be
    split across processes (each with its own ``--methods``, one shared file), resumed after a stop,
    and its table printed from the file alone (``--no-train``). Each line holds one run's key
    (method, seed, lr, max_epochs, target, train_subset, stop), its outcome and its per-epoch test
    accuracy (and, from lines written since the peers' head-to-head, learning rate and set-up seconds).
    A line without ``stop`` is read as ``"target"`` (the only rule before). The device is recorded but
    is no part of the key: keep one file per device.
    """

    KEY = ("method", "seed", "lr", "max_epochs", "target", "train_subset", "stop", "bn_recalibration")
    #: Key fields older lines lack, read as these values (``bn_recalibration`` None: each optimiser's default).
    DEFAULTS: ClassVar[dict[str, str | None]] = {"stop": "target", "bn_recalibration": None}

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
        return tuple(
            run.get(name, self.DEFAULTS.get(name)) if name in self.DEFAULTS else run[name] for name in self.KEY
        )

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


def should_stop(accuracy: list[float], target: float, cap: int, stop: str) -> bool:
    """Whether a run with these per-epoch test accuracies ends here: ``cap`` epochs trained, or under
    ``stop="target"`` the target reached, under ``stop="best"`` the target reached and the best epoch
    (the first of the highest accuracy) behind the latest.

    >>> should_stop([0.98, 0.991], 0.99, 10, "target"), should_stop([0.98, 0.991], 0.99, 10, "best")
    (True, False)
    >>> should_stop([0.98, 0.992, 0.991], 0.99, 10, "best"), should_stop([0.98, 0.97], 0.99, 2, "best")
    (True, True)
    """
    if len(accuracy) >= cap:
        return True
    best = max(accuracy)
    if best < target:
        return False
    return stop == "target" or accuracy.index(best) < len(accuracy) - 1


def run_until(
    config: ExperimentConfig,
    data: DataSplits,
    target: float,
    device: str,
    cap: int,
    stop: str = "target",
    work_dir: Path | None = None,
) -> dict:
    """Train until :func:`should_stop` (the config's schedule still spans its own ``epochs``): the epoch
    ``target`` was first reached (or None), epochs trained, seconds (epochs, then set-up apart), the
    per-epoch test accuracy and learning rate. With ``work_dir`` the run is checkpointed there and a run
    left there by a stopped process is resumed."""
    with ExitStack() as stack:
        out = work_dir if work_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        resume = (out / "checkpoint.pt").exists()
        started = time.perf_counter()
        options = RunOptions(out_dir=out, device=device, progress=False, tensorboard=False, resume=resume)
        trainer = Trainer(config, options, data=data)
        setup_seconds = time.perf_counter() - started  # LipschitzLR's epoch-0 pass; model and optimizer
        trainer.options.on_epoch_end = lambda epoch: should_stop(
            [row["test_acc"] for row in trainer.history], target, cap, stop
        )
        trainer.run()
        accuracy = [row["test_acc"] for row in trainer.history]
        return {
            "reached": first_epoch(accuracy, target),
            "trained": len(accuracy),
            "seconds": sum(row["seconds"] for row in trainer.history),
            "setup_seconds": setup_seconds,
            "test_acc": accuracy,
            "test_acc_as_trained": [row["test_acc_as_trained"] for row in trainer.history],
            "lrs": [row["lr"] for row in trainer.history],
        }


def method_config(
    method: str, args: argparse.Namespace, data: DataSplits, seed: int, lr: float | None
) -> ExperimentConfig:
    config_name, overrides = METHODS[method]
    changes = {"epochs": args.max_epochs, "seed": seed, "train_subset": args.train_subset, **overrides}
    if args.bn_recalibration is not None:
        changes["bn_recalibration"] = args.bn_recalibration
    if lr is not None:
        changes["lr"] = lr
    base = load_config(config_name)
    if "schedule_args" in changes:  # added to the config's own (LipschitzLR's statistics, say), not instead of them
        changes["schedule_args"] = {**base.schedule_args, **changes["schedule_args"]}
    config = base.replace(**changes)
    if SCHEDULES[config.schedule].build is not None:
        steps_per_epoch = math.ceil(data.train_labels.shape[0] / config.batch_size)
        fitted = run_length_args(config.schedule, args.max_epochs, steps_per_epoch)
        config = config.replace(schedule_args={**fitted, **config.schedule_args})
    return config


class Runner:
    """Runs (or recalls from the log) one method at one seed and rate."""

    def __init__(
        self, args: argparse.Namespace, data: DataSplits | None, device: str, log: RunLog, work_dir: Path | None = None
    ) -> None:
        self.args, self.data, self.device, self.log, self.work_dir = args, data, device, log, work_dir

    def __call__(
        self,
        method: str,
        seed: int,
        lr: float | None,
        cap: int | None = None,
        target: float | None = None,
        stop: str | None = None,
    ) -> dict | None:
        """The run's outcome (``target`` and ``stop`` default to ``--target`` and ``--stop``); None under
        ``--no-train`` when the log does not hold it."""
        args = self.args
        cap = args.max_epochs if cap is None else cap
        key = {
            "method": method,
            "seed": seed,
            "lr": lr,
            "max_epochs": args.max_epochs,
            "target": args.target if target is None else target,
            "train_subset": args.train_subset,
            "stop": args.stop if stop is None else stop,
            "bn_recalibration": args.bn_recalibration,
        }
        run = self.log.find(key, cap)
        if run is None and self.data is not None:
            config = method_config(method, args, self.data, seed, lr)
            work = self.work_dir / run_folder(key) if self.work_dir is not None else None
            outcome = run_until(config, self.data, key["target"], self.device, cap, key["stop"], work)
            run = {**key, "cap": cap, "device": self.device, **outcome}
            self.log.add(run)
            if work is not None:
                shutil.rmtree(work)  # recorded: the checkpoint is no longer needed
        return run


def run_folder(key: dict) -> str:
    """The work folder of one run, named by its key: ``lipschitz_sgd_-s0-lrNone-e10-t0.993-best-nNone``."""
    method = re.sub(r"[^A-Za-z0-9]+", "_", key["method"])
    recalibration = f"-bn{key['bn_recalibration']}" if key.get("bn_recalibration") is not None else ""
    return (
        f"{method}-s{key['seed']}-lr{key['lr']}-e{key['max_epochs']}-t{key['target']}-{key['stop']}"
        f"-n{key['train_subset']}{recalibration}"
    )


def sweep(method: str, args: argparse.Namespace, runner: Runner) -> tuple[float | None, int | None]:
    """Tune ``method``'s rate on seed 0: (the rate, the epochs the sweep trained), or Nones if not all run.

    Rates are tried in the order listed; the fewest epochs to the target wins, a tie going to the
    rate listed first. So once a rate has reached the target at epoch b, each later rate is stopped
    after b - 1 epochs (it cannot win after that), and the sweep's cost is the epochs it trained.
    The target is the first ``--report`` target, and sweep runs always stop there (``stop="target"``),
    whatever ``--stop`` says, so one sweep serves both rules.
    """
    best: tuple[float, int, float] | None = None  # (epoch reached, position, rate)
    spent = 0
    for position, candidate in enumerate(args.sweep_lrs):
        cap = args.max_epochs if best is None or best[0] == math.inf else int(best[0]) - 1
        if cap < 1:
            continue
        run = runner(method, 0, candidate, cap, target=args.report[0], stop="target")
        if run is None:
            return None, None
        reached = run["reached"] if run["reached"] is not None and run["reached"] <= cap else None
        trained = min(run["trained"], cap)  # a recorded run may have gone on longer
        print(f"# sweep {method}, lr {candidate}: {reached or 'not reached'} ({trained} epochs)", flush=True)
        spent += trained
        trial = (reached if reached is not None else math.inf, position, candidate)
        best = trial if best is None else min(best, trial)
    return (best[2] if best is not None else None), spent


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
    parser.add_argument(
        "--stop", choices=STOPS, default="target", help="end a run at the target, or once past its best"
    )
    parser.add_argument(
        "--report", type=float, nargs="+", help="the targets the table gives epochs to (default --target)"
    )
    parser.add_argument("--work-dir", type=Path, help="checkpoints of runs in progress (default: RECORD.runs/)")
    parser.add_argument("--figure", type=Path, help="also draw epochs to the first --report target and the rates")
    parser.add_argument(
        "--bn-recalibration",
        type=int,
        metavar="N",
        help="evaluate every method with BatchNorm recalibrated over N training batches (0: never); default: each "
        "optimiser's own (Schedule-Free and DoG 50, the others none); the accuracy as trained is recorded beside",
    )
    parser.add_argument(
        "--as-trained",
        action="store_true",
        help="tabulate the accuracy as trained (no recalibration: the paper's evaluation) recorded beside each run's",
    )
    args = parser.parse_args()
    if args.max_epochs < 1:
        parser.error(f"requires a positive --max-epochs, got {args.max_epochs}")
    if args.no_train and args.record is None:
        parser.error("--no-train prints the table from --record FILE; give the file")
    for value in [args.target, *(args.report or [])]:
        if not 0 <= value <= 1:
            parser.error(f"requires targets in [0, 1] (test accuracies), got {value}")
    args.report = args.report or [args.target]
    device = resolve_device(args.device)
    data = None
    if not args.no_train:
        data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
        warm_up(device, data)
    work_dir = args.work_dir or (args.record.with_name(args.record.name + ".runs") if args.record else None)
    runner = Runner(args, data, str(device), RunLog(args.record), work_dir)
    tuning = f"baselines tuned over {args.sweep_lrs} on seed 0" if args.sweep_lrs else f"baseline lr {args.lr}"
    where = f"from {args.record}" if args.no_train else describe_device(device)
    rule = "stopped at the target" if args.stop == "target" else "stopped once past the best epoch"
    print(
        f"# MNIST CNN to {100 * args.target:.1f}% test accuracy ({rule}), {where}, seeds {args.seeds}, "
        f"at most {args.max_epochs} epochs, {tuning}",
        flush=True,
    )
    results = [method_result(method, args, runner) for method in args.methods]
    if args.as_trained:
        results = [as_trained(result) for result in results]
    print("\n".join(table(results, args)))
    print()
    print("\n".join(rate_table(results)))
    if args.figure is not None:
        draw(results, args, args.figure)
        print(f"# figure: {args.figure}")


def method_result(method: str, args: argparse.Namespace, runner: Runner) -> dict:
    """One method's runs over ``--seeds`` (None where not run), its rate and the epochs its sweep trained."""
    tuned = METHODS[method][0].endswith("_baseline")
    lr, sweep_epochs = (args.lr if tuned else None), (None if tuned else 0)  # nothing to tune for the others
    if tuned and args.sweep_lrs:
        lr, sweep_epochs = sweep(method, args, runner)
        if lr is None:
            return {"method": method, "lr": None, "sweep_epochs": None, "runs": None}
    runs = []
    for seed in args.seeds:
        run = runner(method, seed, lr)
        if run is not None:
            reached = run["reached"]
            outcome = f"reached at epoch {reached}" if reached is not None else f"not reached in {run['trained']}"
            print(f"# {method}, seed {seed}: {outcome} ({total_seconds(run):.1f} s)", flush=True)
        runs.append(run)
    return {"method": method, "lr": lr, "sweep_epochs": sweep_epochs, "runs": runs}


if __name__ == "__main__":
    main()
