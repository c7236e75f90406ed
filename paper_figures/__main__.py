"""Regenerate every figure of the paper for which a history exists, and Table 1.

    python -m lipschitz_lr_paper_figures --runs runs/ --out figures/ [--classical results/classical/classical.json]

Runs are found by folder name (the config name) anywhere under ``--runs``. A figure whose runs are
missing is skipped with a line saying which.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .history import find_runs, read_histories
from .plots import (
    METHOD_COLOURS,
    plot_classical,
    plot_comparison,
    plot_curves,
    plot_gallery,
    plot_lr_grid,
    plot_lr_views,
)
from .table1 import mnist_lr_markdown, table1_markdown

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--classical", type=Path, help="classical.json written by `lipschitz-lr classical`")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"])
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        print(f"paper_figures: error: --runs {args.runs} is not a directory (mistyped?)", file=sys.stderr)
        return 2
    if args.classical is not None and not args.classical.exists():
        print(f"paper_figures: error: --classical {args.classical} does not exist", file=sys.stderr)
        return 2
    runs = find_runs(args.runs)
    if not runs:
        print(f"no history.json under {args.runs}: only the empty table and classical figures can be made")
    written: list[Path] = []
    histories = read_histories(runs)
    runs = {name: runs[name] for name in histories}

    for name, history in histories.items():
        written += plot_lr_views(history, args.out / "per_run" / f"lr_{name}", f"{name}: learning rate", args.formats)
        written += plot_curves(
            history, args.out / "per_run" / f"curves_{name}", f"{name}: accuracy and loss", args.formats
        )

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
        written += plot_lr_grid(panels, args.out / "lr_grid_3x3", args.formats)

    mnist = {name: h for name, h in histories.items() if name.startswith("mnist_")}
    if mnist:
        colours = {n: METHOD_COLOURS["constant"] if n.endswith("_baseline") else None for n in mnist}
        written += plot_comparison(mnist, args.out / "mnist", "MNIST CNN", colours, args.formats)
        written += plot_comparison(
            {n: h for n, h in mnist.items() if not n.endswith("_baseline")},
            args.out / "mnist_lipschitz",
            "MNIST CNN, LipschitzLR",
            None,
            args.formats,
        )
    else:
        print("skip mnist: no mnist_* run")

    lipschitz = [(name, h) for name, h in histories.items() if "baseline" not in name and h and h[0].get("k")]
    if lipschitz:
        name, history = max(lipschitz, key=lambda item: len(item[1]))
        curves = schedule_curves([row["lr"] for row in history])
        written += plot_gallery(
            curves, args.out / "schedules_gallery", f"LipschitzLR ({name}) beside the classic schedules", args.formats
        )
    else:
        print("skip schedules_gallery: no LipschitzLR run")

    if args.classical is not None and args.classical.exists():
        report = json.loads(args.classical.read_text())
        pairs: dict[tuple[str, str], list[dict]] = {}
        for result in report["full_batch"]:
            pairs.setdefault((result["problem"], result["dataset"]), []).append(result)
        for (problem, dataset), pair in pairs.items():
            slug = f"classical_{problem}_{dataset}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            written += plot_classical(pair, args.out / slug, args.formats)
    else:
        print("skip classical figures: pass --classical results/classical/classical.json")

    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "table1.md"
    table.write_text(table1_markdown(runs, histories))
    written.append(table)
    if mnist:
        mnist_table = args.out / "mnist_lr.md"
        mnist_table.write_text(mnist_lr_markdown(histories))
        written.append(mnist_table)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
