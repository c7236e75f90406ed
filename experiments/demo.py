"""The README's main job: LipschitzLR beside the paper's fixed-LR baseline on MNIST, on CPU.

LipschitzLR with momentum (AdaMo) against momentum SGD at the paper's fixed 0.01, on a subset of
MNIST (default: 12,000 training images, 5 epochs, every test image) so that it finishes in a few
minutes on a laptop CPU. Writes each run's history, checkpoint and summary under ``--out`` and a
figure ``--out/demo.png`` (learning rate, accuracy, loss).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from paper_figures.plots import METHOD_COLOURS, plot_comparison

from .config import load_config
from .data import load_dataset
from .train import RunOptions, Trainer, resolve_device

# LipschitzLR with momentum (AdaMo, epoch-0 seed x = 0.5) beside the paper's fixed-LR baseline.
RUNS = (("mnist_momentum", "LipschitzLR (momentum)"), ("mnist_momentum_baseline", "momentum, fixed lr 0.01"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="datasets in torchvision's layout (default $LIPSCHITZ_LR_DATA)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
    runs = {}
    for config_name, label in RUNS:
        config = load_config(config_name).replace(epochs=args.epochs, train_subset=args.train_subset)
        options = RunOptions(
            out_dir=args.out / config_name, device=str(device), progress=not args.no_progress, tensorboard=False
        )
        runs[label] = Trainer(config, options, data=data).run()
    colours = dict(
        zip((label for _, label in RUNS), (METHOD_COLOURS["lipschitz"], METHOD_COLOURS["constant"]), strict=True)
    )
    paths = plot_comparison(
        runs,
        args.out / "demo",
        f"MNIST CNN, {args.train_subset} training images, {device.type}",
        colours,
        formats=("png",),
    )
    for label, history in runs.items():
        best = max(history, key=lambda r: r["test_acc"])
        lrs = ", ".join(f"{row['lr']:.3g}" for row in history)
        print(
            f"{label:22s} best test accuracy {100 * best['test_acc']:.2f}% (epoch {best['epoch']}), "
            f"learning rates {lrs}"
        )
    print(f"histories under {args.out}/, figure {paths[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
