"""The head-to-head's report (``benchmarks/time_to_accuracy.py``): epochs to each target, the tables, each method's
style and the figure, from the runs a record holds. No training here."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from lipschitz_lr_experiments.optimizers import OPTIMIZERS


def first_epoch(accuracy: list[float], target: float) -> int | None:
    """The first epoch (1-based) whose test accuracy reaches ``target``, or None."""
    return next((epoch for epoch, value in enumerate(accuracy, start=1) if value >= target), None)


def _show(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def as_trained(result: dict) -> dict:
    """``result`` with each run's test accuracy as trained (``test_acc_as_trained``, where recorded) in place of the
    accuracy as the run was evaluated."""
    runs = result["runs"]
    if runs is None:
        return result
    swapped = [
        None if run is None else {**run, "test_acc": run.get("test_acc_as_trained", run["test_acc"])} for run in runs
    ]
    return {**result, "runs": swapped}


def total_seconds(run: dict) -> float:
    """The run's wall seconds: its epochs and its set-up (LipschitzLR's epoch-0 pass; lines before the
    set-up was recorded count their epochs only)."""
    return run["seconds"] + run.get("setup_seconds", 0.0)


def epochs_to(run: dict, target: float) -> int | str:
    """The first epoch at ``target``; ``"-"`` if the run ended without it; ``"?"`` if it was stopped at a
    lower target first (a ``stop="target"`` run) and so cannot say."""
    epoch = first_epoch(run["test_acc"], target)
    if epoch is not None:
        return epoch
    stopped_early = run.get("stop", "target") == "target" and run["reached"] is not None and run["target"] < target
    return "?" if stopped_early else "-"


def table(results: list[dict], args: argparse.Namespace) -> list[str]:
    """The markdown table: epochs to each ``--report`` target, best accuracy, seconds, the sweep."""
    first = args.report[0]
    header = ["method", "lr", "runs"]
    for target in args.report:
        header += [f"epochs to {100 * target:g}% (mean of reached)", "per seed"]
    header += ["best test acc % (mean ± sd)", "seconds (mean)", "sweep epochs", f"to {100 * first:g}% with sweep"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        if result["runs"] is None:
            rows.append(f"| {result['method']} | sweep not run |" + " |" * (len(header) - 2))
            continue
        runs = [run for run in result["runs"] if run is not None]
        cells = [result["method"], _show(result["lr"], "{:g}"), f"{len(runs)}/{len(result['runs'])}"]
        means = []
        for target in args.report:
            per_seed = [epochs_to(run, target) if run is not None else "not run" for run in result["runs"]]
            reached = [value for value in per_seed if isinstance(value, int)]
            known = [value for value in per_seed if value not in ("?", "not run")]
            mean = statistics.mean(reached) if reached else None
            means.append(mean)
            share = f" ({len(reached)}/{len(known)})" if known and len(reached) < len(known) else ""
            unknown = "?" if runs else "-"  # stopped short of the target before it could be seen; or nothing run
            cells += [(_show(mean) if known else unknown) + share, ", ".join(str(value) for value in per_seed)]
        best = [100 * max(run["test_acc"]) for run in runs]
        partial = any(run.get("stop", "target") == "target" for run in runs)
        spread = f" ± {statistics.stdev(best):.2f}" if len(best) > 1 else ""
        cells.append(
            ("-" if not best else f"{statistics.mean(best):.2f}{spread}")
            + (" (stopped at target)" if partial and best else "")
        )
        cells.append(_show(statistics.mean(total_seconds(run) for run in runs) if runs else None, "{:.0f}"))
        cells.append(_show(result["sweep_epochs"], "{}"))
        total = None if means[0] is None or result["sweep_epochs"] is None else result["sweep_epochs"] + means[0]
        cells.append(_show(total))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def rate_table(results: list[dict]) -> list[str]:
    """The learning rate each method used per epoch, from its first recorded seed that has them."""
    rows = ["| method (seed) | learning rate per epoch |", "|---|---|"]
    for result in results:
        for seed_run in result["runs"] or []:
            if seed_run is not None and "lrs" in seed_run:
                rates = ", ".join(f"{rate:.3g}" for rate in seed_run["lrs"])
                rows.append(f"| {result['method']} ({seed_run['seed']}) | {rates} |")
                break
    return rows


#: The tuned schedules (fixed-rate SGD with momentum, the rate swept on seed 0) and the learning-rate-free peers;
#: every other method is a LipschitzLR configuration.
TUNED = ("constant", "step", "cosine", "onecycle")


PEERS = tuple(spec.label for spec in OPTIMIZERS.values() if spec.label)


def method_styles(methods: list[str]) -> dict[str, tuple[str, tuple[float, ...]]]:
    """Each method's label and colour, the same in every panel: LipschitzLR's configurations in blues and labelled
    as LipschitzLR's (the preset says it is one), the tuned schedules in oranges, each peer its own hue (never a grey,
    the sweep's colour)."""
    import matplotlib

    families = {
        "lipschitz": [m for m in methods if m not in TUNED and m not in PEERS],
        "tuned": [m for m in methods if m in TUNED],
        "peers": [m for m in methods if m in PEERS],
    }
    blues, oranges, hues = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"], matplotlib.colormaps["tab10"]
    styles = {}
    for i, method in enumerate(families["lipschitz"]):
        label = method if method.startswith("lipschitz") else f"lipschitz ({method})"
        label = label.replace("(sgd + warm-up)", "(sgd + warm-up: the preset)")
        styles[method] = (label, blues(0.45 + 0.5 * i / max(1, len(families["lipschitz"]) - 1)))
    for i, method in enumerate(families["tuned"]):
        styles[method] = (f"{method} (tuned)", oranges(0.4 + 0.5 * i / max(1, len(families["tuned"]) - 1)))
    own = [hues(i) for i in (2, 3, 4, 5, 6, 8, 9)] + [(0.0, 0.0, 0.0, 1.0)]  # tab10 less blue, orange, grey; black
    for i, method in enumerate(families["peers"]):
        styles[method] = (method, own[i % len(own)])
    return styles


def draw(results: list[dict], args: argparse.Namespace, path: Path) -> None:
    """Two panels: mean epochs to the first ``--report`` target per method (the sweep's epochs stacked on
    the tuned baselines; a method that never reached it drawn hatched at ``--max-epochs``; the mean over
    the seeds that reached it, labelled with how many did when not all; a method not yet run has no bar),
    and each method's learning rate per epoch (first recorded seed, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = args.report[0]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(15, 0.35 * len(results) + 2.5))
    styles = method_styles([result["method"] for result in results])
    for position, result in enumerate(results):
        label_of, color = styles[result["method"]]
        runs = [run for run in result["runs"] or [] if run is not None]
        if not runs:
            bars.text(0.1, position, "not run", va="center", fontsize=8)
            continue
        reached = [epochs_to(run, target) for run in runs]
        reached = [value for value in reached if isinstance(value, int)]
        mean = statistics.mean(reached) if reached else args.max_epochs
        bars.barh(position, mean, color=color, hatch=None if reached else "//")
        label = f"{mean:.1f}" if reached else "not reached"
        sweep = result["sweep_epochs"] or 0
        if sweep:
            bars.barh(position, sweep, left=mean, color="lightgrey", edgecolor="grey")
            label += f" + {sweep} sweep"
        if reached and len(reached) < len(runs):
            label += f" ({len(reached)}/{len(runs)} seeds)"
        elif len(runs) < len(args.seeds):
            label += f" ({len(runs)} seed{'s' if len(runs) > 1 else ''} run)"
        bars.text(mean + sweep + 0.1, position, label, va="center", fontsize=8)
        with_rates = [run for run in runs if "lrs" in run]
        if with_rates:
            rates = with_rates[0]["lrs"]
            curves.plot(range(1, len(rates) + 1), rates, marker="o", color=color, label=label_of)
    bars.set_yticks(range(len(results)), [styles[result["method"]][0] for result in results])
    bars.invert_yaxis()
    bars.set_xlabel(f"epochs to {100 * target:g}% test accuracy (mean over seeds; grey: the sweep's epochs)")
    curves.set_yscale("log")
    curves.set_xlabel("epoch")
    curves.set_ylabel("learning rate used (a peer's own step size)")
    curves.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    devices = sorted({run.get("device", "?") for result in results for run in result["runs"] or [] if run})
    protocol = f", BatchNorm recalibrated over {args.bn_recalibration} batches for all" if args.bn_recalibration else ""
    protocol += ", accuracy as trained" if getattr(args, "as_trained", False) else ""
    fig.suptitle(
        f"MNIST CNN: epochs to {100 * target:g}% test accuracy, seeds {', '.join(map(str, args.seeds))}{protocol}, "
        f"{'/'.join(devices)}\n(blue: LipschitzLR; orange: tuned schedules; the rest: learning-rate-free peers)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
