"""``lipschitz-lr`` command line: run a config, sweep a baseline, list configs, classical tables.

Examples::

    lipschitz-lr list
    lipschitz-lr run mnist_sgd --data-dir ../shared/data
    lipschitz-lr run experiments/lipschitz_lr_experiments/configs/c10_resnet20_sgd.toml --device cuda --resume
    lipschitz-lr sweep c10_resnet20_sgd_baseline --lr 0.1 0.03 0.01 --epochs 30
    lipschitz-lr reproduce --dataset cifar10 --seeds 0 1 2 --dry-run
    lipschitz-lr classical --out results/classical
    lipschitz-lr download mnist cifar10
    lipschitz-lr unlock runs/mnist_sgd

Parsing the command line imports no torch (``--help`` answers at once); each command imports what it runs.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, RunDirError
from .preemption import Preempted, preemption_signals
from .run_lock import LockError, break_lock
from .settings import AMP_MODES

if TYPE_CHECKING:
    from .config import ExperimentConfig
    from .train import RunOptions


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: Any = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return key.strip(), parsed


def _apply_overrides(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    changes: dict[str, Any] = {}
    for key, value in (_parse_override(item) for item in args.set or []):
        if key.startswith("schedule_args."):  # one argument of the schedule, the others kept
            changes.setdefault("schedule_args", dict(config.schedule_args))[key.removeprefix("schedule_args.")] = value
        else:
            changes[key] = value
    for key in ("epochs", "seed"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    return config.replace(**changes) if changes else config


def _out_dir(text: str) -> Path:
    """``--out``: a folder; an empty value (which would write the run among the current folder's files) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"needs a folder to write into, got {text!r} (leave --out out for the default)"
        )
    return Path(text)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="datasets in torchvision's layout (default $LIPSCHITZ_LR_DATA, else data/)"
    )
    parser.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download a dataset that is missing, once (default); --no-download refuses instead",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, help="override the config's number of epochs")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    _add_data_options(parser)
    parser.add_argument("--amp", default="off", choices=AMP_MODES, help="mixed precision")
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster on GPUs)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward pass")
    parser.add_argument(
        "--deterministic", action="store_true", help="TF32 off, deterministic algorithms (GPU: true fp32, slower)"
    )
    parser.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN autotuning (GPU: faster, not bitwise)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the output directory (default: refuse)"
    )


def _options(args: argparse.Namespace, out_dir: Path, resume: bool = False) -> RunOptions:
    from .train import RunOptions

    return RunOptions(
        out_dir=out_dir,
        data_dir=args.data_dir,
        device=args.device,
        resume=resume,
        overwrite=args.overwrite,
        amp=args.amp,
        download=args.download,
        progress=not args.no_progress,
        channels_last=args.channels_last,
        compile=args.compile,
        deterministic=args.deterministic,
        cudnn_benchmark=args.cudnn_benchmark,
        command="lipschitz-lr " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )


def _interrupted(out_dir: Path, command: list[str] | None) -> int:
    """One line instead of a traceback after Ctrl-C: where the run is and how to continue it."""
    if command is None:
        print(f"lipschitz-lr: interrupted; the finished runs are in {out_dir}/", file=sys.stderr)
        return 130
    again = " ".join(shlex.quote(a) for a in command if a not in ("--resume", "--overwrite"))
    print(
        f"lipschitz-lr: interrupted; every finished epoch is saved in {out_dir}/: continue with "
        f"`lipschitz-lr {again} --resume`",
        file=sys.stderr,
    )
    return 130


def _preempted(out_dir: Path, command: list[str] | None, preempted: Preempted) -> int:
    """One line after SIGTERM/SIGUSR1: the run stopped, its last epoch is saved, how it continues."""
    again = " ".join(shlex.quote(a) for a in command or [] if a not in ("--resume", "--overwrite"))
    resume = f": continue with `lipschitz-lr {again} --resume`" if command else ""
    print(
        f"lipschitz-lr: {preempted}; every finished epoch is saved in {out_dir}/ (the partial one is redone "
        f"exactly){resume}",
        file=sys.stderr,
    )
    return 128 + preempted.signum


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .history import best_epoch
    from .train import run_experiment

    config = _apply_overrides(load_config(args.config), args)
    out_dir = args.out or Path("runs") / config.name
    try:
        with preemption_signals():
            history = run_experiment(config, _options(args, out_dir, resume=args.resume))
    except KeyboardInterrupt:
        return _interrupted(out_dir, args.argv)
    except Preempted as preempted:
        return _preempted(out_dir, args.argv, preempted)
    best = best_epoch(history)
    if os.environ.get("RANK", "0") == "0":
        reached = (
            f"best test accuracy {best['test_acc']:.4f} at epoch {best['epoch']}" if best else "no finite accuracy"
        )
        print(f"{config.name}: {reached}; wrote {out_dir}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .config import load_config
    from .history import best_epoch
    from .train import run_experiment

    base = _apply_overrides(load_config(args.config), args)
    if base.schedule == "lipschitz":
        raise ConfigError("sweep tunes baselines: the config's schedule must not be 'lipschitz'")
    decays = args.decay or [None]
    for name, values in (("--lr", args.lr), ("--decay", args.decay or [])):
        bad = [v for v in values if not (math.isfinite(v) and (v > 0 or (name == "--decay" and v == 0)))]
        if bad:
            raise ConfigError(f"{name} values must be finite and positive, got {bad}")
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} lists a value twice ({values}); each run needs its own directory")
    root = args.out or Path("runs") / f"sweep_{base.name}"
    rows = []
    for lr in args.lr:
        for decay in decays:
            changes: dict[str, Any] = {"lr": lr}
            label = f"lr{lr:g}"
            if decay is not None:
                key = args.decay_key or ("decay" if base.schedule == "constant" else None)  # the Keras decay
                if key is None:
                    raise ConfigError(f"schedule {base.schedule!r}: name the argument to sweep with --decay-key")
                changes["schedule_args"] = {**base.schedule_args, key: decay}
                label += f"_decay{decay:g}"
            config = base.replace(name=f"{base.name}_{label}", **changes)
            try:
                with preemption_signals():
                    history = run_experiment(config, _options(args, root / label))
            except KeyboardInterrupt:
                return _interrupted(root, None)
            except Preempted as preempted:
                return _preempted(root, None, preempted)
            best = best_epoch(history) or {"test_acc": math.nan, "epoch": None}
            rows.append({"lr": lr, "decay": decay, "best_test_acc": best["test_acc"], "best_epoch": best["epoch"]})
    rows.sort(key=lambda r: -r["best_test_acc"] if math.isfinite(r["best_test_acc"]) else math.inf)
    (root / "sweep.json").write_text(json.dumps(rows, indent=1))
    lines = ["| lr | decay | best test acc | epoch |", "|---|---|---|---|"]
    lines += [
        f"| {r['lr']:g} | {r['decay'] if r['decay'] is not None else '-'} | {r['best_test_acc']:.4f} | "
        f"{r['best_epoch']} |"
        for r in rows
    ]
    (root / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _parse_extra(text: str) -> tuple[str, str]:
    """``--slurm-extra KEY=VALUE``: one more ``#SBATCH --KEY=VALUE`` line."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--slurm-extra expects KEY=VALUE (an sbatch option without its dashes), got {text!r}")
    return key.strip().lstrip("-").replace("-", "_"), value


def _reproduce_run_args(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The run options ``reproduce`` passes on: as ``lipschitz-lr run`` arguments and as RunOptions fields."""
    argv: list[str] = []
    options: dict[str, Any] = {"amp": args.amp, "download": args.download, "tensorboard": True}
    if args.data_dir is not None:
        argv += ["--data-dir", str(args.data_dir)]
        options["data_dir"] = args.data_dir
    if not args.download:
        argv.append("--no-download")
    argv += ["--amp", args.amp]
    for flag in ("channels_last", "compile", "deterministic"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
        options[flag] = getattr(args, flag)
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    for item in args.set or []:
        argv += ["--set", item]
    return argv, options


def cmd_reproduce(args: argparse.Namespace) -> int:
    from . import reproduce

    rows = reproduce.select_rows(args.rows, args.dataset, args.model, args.optimizer)
    root = args.out
    cells = reproduce.expand(rows, args.seeds, root, lambda config: _apply_overrides(config, args))
    lines, _ = reproduce.plan_lines(cells, args.tflops)
    if args.dry_run:
        print("\n".join(lines))
        return 0
    print(lines[-1].strip(), flush=True)
    pending = [cell for cell in cells if reproduce.cell_state(cell)[0] != "done"]
    progress = reproduce.Progress(len(cells), len(cells) - len(pending))
    run_argv, options = _reproduce_run_args(args)
    try:
        if args.executor == "local":
            devices = args.devices or reproduce.default_devices()
            results = reproduce.run_local(pending, devices, run_argv, root, progress)
        elif args.executor == "submitit-local":
            executor = reproduce.make_executor(args.executor, root / "submitit", {"timeout_min": args.slurm_time})
            options = {**options, "device": args.device if args.device != "auto" else "cpu"}
            results = reproduce.run_submitit(pending, executor, options, run_argv, progress, not args.no_wait)
        else:
            from .slurm import JobRequest, check_request

            request = JobRequest(
                gpus=args.slurm_gpus,
                cpus=args.slurm_cpus,
                memory=args.slurm_mem,
                partition=args.slurm_partition,
                account=args.slurm_account,
                qos=args.slurm_qos,
                time_minutes=args.slurm_time or 24 * 60,
                signal_delay_s=args.slurm_signal_delay,
                extra=dict(_parse_extra(item) for item in args.slurm_extra or []),
            )
            executor = reproduce.make_executor("slurm", root / "submitit", request.parameters(*check_request(request)))
            options = {**options, "device": args.device}
            results = reproduce.run_slurm(pending, executor, options, run_argv, progress, not args.no_wait)
    except KeyboardInterrupt:
        print(f"lipschitz-lr: interrupted; rerun the same command to continue the matrix in {root}/", file=sys.stderr)
        return 130
    unfinished = [cell for cell in cells if reproduce.cell_state(cell)[0] != "done"]
    if not args.no_figures and len(unfinished) < len(cells):
        table = reproduce.write_tables(root)
        if table is not None:
            print(f"Table 1 over seeds {args.seeds}: {table}")
    if unfinished:
        submitted = all(results.get(cell) == "submitted" for cell in unfinished)
        what = "submitted (rerun the same command to see their states)" if submitted else "not finished"
        failed = [
            f"{cell.label}: {results[cell]}"
            for cell in unfinished
            if results.get(cell, "").startswith(("failed", "vanished"))
        ]
        for line in failed:
            print(line, file=sys.stderr)
        print(f"{len(unfinished)} of {len(cells)} runs {what}; rerun the same command to continue", file=sys.stderr)
        return 0 if submitted else 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .config import bundled_configs, load_config

    for name in bundled_configs():
        config = load_config(name)
        print(
            f"{name:36s} {config.dataset:9s} {config.model:13s} {config.optimizer:8s} {config.schedule:10s} "
            f"{config.description}"
        )
    return 0


def cmd_classical(args: argparse.Namespace) -> int:
    from .classical import run_all

    run_all(Path(args.out), data_dir=args.data_dir)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import DATASETS, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    for dataset in args.datasets:
        DATASETS.lookup(dataset).load(root, True)  # downloads what is missing, checks it, reads it back
        print(f"{dataset}: ready under {root.resolve()}")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    print(break_lock(Path(args.run_dir), force=args.force))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lipschitz-lr", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one config")
    run.add_argument("config", help="a TOML path or a bundled config name (see `list`)")
    run.add_argument("--out", type=_out_dir, help="output directory (default runs/<name>)")
    run.add_argument("--resume", action="store_true", help="continue from the output directory's checkpoint")
    _add_run_options(run)
    run.set_defaults(func=cmd_run)
    sweep = sub.add_parser("sweep", help="grid search of a baseline's learning rate (and decay)")
    sweep.add_argument("config")
    sweep.add_argument("--lr", type=float, nargs="+", required=True)
    sweep.add_argument("--decay", type=float, nargs="+", help="Keras decay (constant) or a schedule argument")
    sweep.add_argument(
        "--decay-key", help="the schedule_args key --decay sets (e.g. gamma; default for constant: decay)"
    )
    sweep.add_argument("--out", type=_out_dir)
    _add_run_options(sweep)
    sweep.set_defaults(func=cmd_sweep)
    rep = sub.add_parser(
        "reproduce",
        help="Table 1 as rows x seeds: idempotent, resumable, local GPUs or SLURM",
        description=(
            "Run Table 1's rows (or --rows) for each --seed into OUT/<config>/seed<k>: finished runs are skipped, "
            "cut ones resumed exactly, so rerunning continues the matrix. Ends with Table 1 over the seeds."
        ),
    )
    rep.add_argument("--rows", nargs="+", help="config names or TOML paths (default: Table 1's rows)")
    rep.add_argument("--dataset", nargs="+", help="only Table 1's rows on these datasets")
    rep.add_argument("--model", nargs="+", help="only Table 1's rows with these models")
    rep.add_argument("--optimizer", nargs="+", help="only Table 1's rows with these optimizers")
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep.add_argument("--out", type=_out_dir, default=Path("runs/reproduce"))
    rep.add_argument("--dry-run", action="store_true", help="print the plan and its estimated GPU-hours only")
    rep.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local")
    rep.add_argument("--devices", nargs="+", help="local: one run at a time on each (default: every GPU, else cpu)")
    rep.add_argument("--tflops", type=float, default=5.0, help="the sustained TFLOP/s the estimate assumes")
    slurm = rep.add_argument_group("SLURM (--executor slurm; each maps to one #SBATCH line, docs/reproducing.md)")
    slurm.add_argument("--slurm-partition", help="--partition (default: the cluster's default partition)")
    slurm.add_argument("--slurm-account", help="--account")
    slurm.add_argument("--slurm-qos", help="--qos")
    slurm.add_argument("--slurm-gpus", type=int, help="--gpus-per-node (default: 1 if the partition has GPUs, else 0)")
    slurm.add_argument("--slurm-cpus", type=int, help="--cpus-per-task (default: 8, or the nodes' CPUs if fewer)")
    slurm.add_argument("--slurm-mem", help="--mem, e.g. 16G (default: the partition's)")
    slurm.add_argument(
        "--slurm-time", "--slurm-timeout-min", type=int, dest="slurm_time", help="--time in minutes (default 1440)"
    )
    slurm.add_argument(
        "--slurm-signal-delay",
        type=int,
        default=120,
        help="seconds before the time limit that the job is signalled to checkpoint and requeue (default 120)",
    )
    slurm.add_argument("--slurm-extra", action="append", metavar="KEY=VALUE", help="any other #SBATCH option")
    rep.add_argument(
        "--device", default="auto", help="the jobs' device (slurm, submitit-local; default: what the node has)"
    )
    rep.add_argument("--no-wait", action="store_true", help="slurm: submit and return (rerun to see the states)")
    rep.add_argument("--no-figures", action="store_true", help="skip Table 1 and the figures at the end")
    _add_data_options(rep)
    for name, kwargs in (
        ("--epochs", {"type": int, "help": "override every config's epochs (smoke runs)"}),
        ("--amp", {"default": "off", "choices": AMP_MODES}),
        ("--channels-last", {"action": "store_true"}),
        ("--compile", {"action": "store_true"}),
        ("--deterministic", {"action": "store_true"}),
        ("--set", {"action": "append", "metavar": "KEY=VALUE"}),
    ):
        rep.add_argument(name, **kwargs)
    rep.set_defaults(func=cmd_reproduce, seed=None)
    lister = sub.add_parser("list", help="list the bundled configs")
    lister.set_defaults(func=cmd_list)
    classical = sub.add_parser("classical", help="the classical experiments (logistic/softmax/linear regression)")
    classical.add_argument("--out", default="results/classical")
    classical.add_argument("--data-dir", type=Path)
    classical.set_defaults(func=cmd_classical)
    download = sub.add_parser(
        "download", help="download datasets into the data folder once (runs download what they miss themselves)"
    )
    download.add_argument(
        "datasets", nargs="+", metavar="DATASET", help="mnist, fashionmnist, kmnist, cifar10, cifar100"
    )
    download.add_argument(
        "--data-dir", type=Path, help="datasets in torchvision's layout (default $LIPSCHITZ_LR_DATA, else data/)"
    )
    download.set_defaults(func=cmd_download)
    unlock = sub.add_parser("unlock", help="break the lock a run that is gone left in its directory")
    unlock.add_argument("run_dir", help="the run's output directory")
    unlock.add_argument(
        "--force", action="store_true", help="also a lock of a live process, of another host, or unreadable"
    )
    unlock.set_defaults(func=cmd_unlock)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    logging.getLogger("lipschitz_lr").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except (ConfigError, RunDirError, LockError, OSError, ValueError) as error:
        if args.verbose:
            raise
        print(f"lipschitz-lr: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
