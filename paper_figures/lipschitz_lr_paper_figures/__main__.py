"""Regenerate every figure of the paper for which a history exists, and Table 1.

    python -m lipschitz_lr_paper_figures --runs runs/ --out figures/ [--classical results/classical/classical.json]

Runs are found anywhere under ``--runs`` (every folder with a ``history.json``) and named by their
``config.json`` (config name and seed; else the folder's name). Table 1 aggregates the seeds of a config
(mean ± sample std); the figures draw their mean. The tables are written first, and a figure that cannot
be drawn is named and skipped, as is a run that cannot be read, so one damaged run never stops the rest.
A figure whose runs are missing is skipped with a line saying which. Per-run figures are drawn up to
:data:`PER_RUN_AUTO_LIMIT` runs unless ``--per-run``/``--no-per-run`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .history import mean_history, read_runs
from .plots import (
    METHOD_COLOURS,
    distinct_colours,
    plot_classical,
    plot_comparison,
    plot_curves,
    plot_gallery,
    plot_lr_grid,
    plot_lr_views,
    plt,
)
from .table1 import MNIST_ROWS, mnist_lr_markdown, table1_markdown

GRID_ROWS = (
    ("c10_resnet20", "CIFAR-10 ResNet-20"),
    ("c10_densenet40", "CIFAR-10 DenseNet-40"),
    ("c100_resnet164v2", "CIFAR-100 ResNet-164 v2"),
)
GRID_COLS = (("sgd", "SGD"), ("momentum", "Momentum"), ("rmsprop", "RMSprop"))


def schedule_curves(lipschitz_lrs: list[float], steps_per_epoch: int = 100) -> dict[str, list[float]]:
    """Every classic schedule over the same epochs, starting from LipschitzLR's median learning rate."""
    from lipschitz_lr_experiments.schedules import SCHEDULES, run_length_args, schedule_trajectory

    epochs = len(lipschitz_lrs)
    lr = sorted(lipschitz_lrs)[epochs // 2]
    curves = {"lipschitz": list(lipschitz_lrs)}
    for name, spec in SCHEDULES.items():
        if spec.build is None:
            continue
        args = run_length_args(name, epochs, steps_per_epoch)
        curves[name] = schedule_trajectory(name, args, epochs, steps_per_epoch, lr, momentum=0.9)
    return curves


#: Above this many runs, per-run figures are drawn only when asked (``--per-run``): two figures a run.
PER_RUN_AUTO_LIMIT = 40
#: At most this many configs share one comparison figure (seeds are averaged into one line per config).
MAX_COMPARED = 12


def _draw(label: str, written: list[Path], draw: Callable[..., list[Path]], *args: Any) -> None:
    """``draw(*args)`` one figure; if it fails, name it and the error on stderr and go on (the tables are
    already written)."""
    try:
        written += draw(*args)
    except Exception as error:  # one damaged run must not abort every figure
        print(f"skip figure {label}: {type(error).__name__}: {error}", file=sys.stderr)
        plt.close("all")


def _compared(histories: dict[str, list[dict]], title: str) -> dict[str, list[dict]]:
    if len(histories) <= MAX_COMPARED:
        return histories
    names = sorted(histories, key=lambda n: (n not in MNIST_ROWS and not n.endswith("_baseline"), n))
    print(f"{title}: drawing {MAX_COMPARED} of {len(histories)} configs; left out: {', '.join(names[MAX_COMPARED:])}")
    return {name: histories[name] for name in names[:MAX_COMPARED]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--classical", type=Path, help="classical.json written by `lipschitz-lr classical`")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"])
    parser.add_argument(
        "--per-run",
        action=argparse.BooleanOptionalAction,
        help=f"per-run figures (default: on up to {PER_RUN_AUTO_LIMIT} runs, off above)",
    )
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        print(f"paper_figures: error: --runs {args.runs} is not a directory (mistyped?)", file=sys.stderr)
        return 2
    if args.classical is not None and not args.classical.exists():
        print(f"paper_figures: error: --classical {args.classical} does not exist", file=sys.stderr)
        return 2
    runs = read_runs(args.runs)
    if not runs:
        print(f"no readable history.json under {args.runs}: only the empty table and classical figures can be made")
    # Seeds averaged: one history per config for the figures; the tables aggregate the runs themselves.
    histories = {name: mean_history([run.history for run in group]) for name, group in runs.items()}

    args.out.mkdir(parents=True, exist_ok=True)  # the tables first: no figure can stop them
    written: list[Path] = []
    table = args.out / "table1.md"
    table.write_text(table1_markdown(runs))
    written.append(table)
    mnist = {name: h for name, h in histories.items() if name.startswith("mnist_")}
    if mnist:
        mnist_table = args.out / "mnist_lr.md"
        mnist_table.write_text(mnist_lr_markdown({name: runs[name][0].history for name in mnist}))
        written.append(mnist_table)

    count = sum(len(group) for group in runs.values())
    per_run = args.per_run if args.per_run is not None else count <= PER_RUN_AUTO_LIMIT
    if not per_run and args.per_run is None:
        print(f"skip per-run figures: {count} runs (more than {PER_RUN_AUTO_LIMIT}); pass --per-run to draw them")
    for group in runs.values() if per_run else ():
        for run in group:
            stem = run.name if run.seed is None or len(group) == 1 else f"{run.name}_seed{run.seed}"
            folder = args.out / "per_run"
            title = f"{stem}: learning rate"
            _draw(f"lr_{stem}", written, plot_lr_views, run.history, folder / f"lr_{stem}", title, args.formats)
            title = f"{stem}: accuracy and loss"
            _draw(f"curves_{stem}", written, plot_curves, run.history, folder / f"curves_{stem}", title, args.formats)

    panels = [
        [(f"{row_label}, {col_label}", histories.get(f"{row}_{col}")) for col, col_label in GRID_COLS]
        for row, row_label in GRID_ROWS
    ]
    missing = [f"{row}_{col}" for row, _ in GRID_ROWS for col, _ in GRID_COLS if f"{row}_{col}" not in histories]
    if len(missing) == len(GRID_ROWS) * len(GRID_COLS):
        print("skip lr_grid_3x3: none of its runs has a history (" + ", ".join(missing) + ")")
    else:
        if missing:
            print("lr_grid_3x3: panels marked 'not run' for " + ", ".join(missing))
        _draw("lr_grid_3x3", written, plot_lr_grid, panels, args.out / "lr_grid_3x3", args.formats)

    if mnist:
        compared = _compared(mnist, "mnist")
        lipschitz_only = _compared({n: h for n, h in mnist.items() if not n.endswith("_baseline")}, "mnist_lipschitz")
        # one colour per run in both figures: the baselines orange, the rest distinct
        names = [*compared, *(n for n in lipschitz_only if n not in compared)]
        baselines = {n: METHOD_COLOURS["constant"] for n in names if n.endswith("_baseline")}
        colours = distinct_colours(sorted(names, key=lambda n: n not in baselines), baselines)
        _draw("mnist", written, plot_comparison, compared, args.out / "mnist", "MNIST CNN", colours, args.formats)
        title = "MNIST CNN, LipschitzLR"
        stem = args.out / "mnist_lipschitz"
        _draw("mnist_lipschitz", written, plot_comparison, lipschitz_only, stem, title, colours, args.formats)
    else:
        print("skip mnist: no mnist_* run")

    lipschitz = [(name, h) for name, h in histories.items() if "baseline" not in name and h and h[0].get("k")]
    if lipschitz:
        name, history = max(lipschitz, key=lambda item: len(item[1]))
        curves = schedule_curves([row["lr"] for row in history])
        title = f"LipschitzLR ({name}) beside the classic schedules"
        _draw("schedules_gallery", written, plot_gallery, curves, args.out / "schedules_gallery", title, args.formats)
    else:
        print("skip schedules_gallery: no LipschitzLR run")

    if args.classical is not None and args.classical.exists():
        report = json.loads(args.classical.read_text())
        pairs: dict[tuple[str, str], list[dict]] = {}
        for result in report["full_batch"]:
            pairs.setdefault((result["problem"], result["dataset"]), []).append(result)
        for (problem, dataset), pair in pairs.items():
            slug = f"classical_{problem}_{dataset}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            _draw(slug, written, plot_classical, pair, args.out / slug, args.formats)
    else:
        print("skip classical figures: pass --classical results/classical/classical.json")

    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
