"""How far K_z and the learning rate move when the reference pass reads only the first N batches.

``AdaptiveLR(statistics_batches=N)`` (config key ``statistics_batches``) is an option beyond the paper
for large datasets: the pass reads a fixed leading subset of the clean training set instead of all of
it. Its ``K_z`` (a maximum over batches) is at most the full pass's, so its learning rate is at least
as large. This prints, for the MNIST CNN (the authors' model, batch 256, 235 batches in all) at its
initial weights and after one epoch of faithful LipschitzLR SGD, each subset's K_z, SGD learning rate
and pass time against the full pass.

    python benchmarks/statistics_subset.py --data-dir ../shared/data --seeds 0 1 2 --trained-seeds 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lipschitz_lr.bounds import cross_entropy_bound
from lipschitz_lr.statistics import collect_statistics
from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import describe_device, resolve_device
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.train import RunOptions, Trainer

BATCH = 256


def rows(model: torch.nn.Module, clean: TensorBatches, subsets: list[int | None]) -> list[tuple]:
    results = []
    for n in subsets:
        start = time.perf_counter()
        stats = collect_statistics(model, clean, max_batches=n)
        seconds = time.perf_counter() - start
        lr = 1.0 / cross_entropy_bound(stats.k_z, 10, BATCH)
        results.append((n or len(clean), stats.k_z, lr, seconds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds at the initial weights")
    parser.add_argument("--trained-seeds", type=int, nargs="*", default=[0], help="seeds after one training epoch")
    parser.add_argument("--subsets", type=int, nargs="+", default=[118, 47, 24, 12, 6])
    parser.add_argument("--train-subset", type=int, help="the first N training images only (smoke runs)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
    clean = TensorBatches(data.train_images, data.train_labels, BATCH)
    subsets: list[int | None] = [None, *args.subsets]
    print(f"# MNIST CNN, batch {BATCH}, {len(clean)} batches, {describe_device(device)}")
    print("| weights | batches read | share | K_z | K_z / full | SGD lr | lr / full | pass (s) | time / full |")
    print("|---|---|---|---|---|---|---|---|---|")
    states = [("initial", seed) for seed in args.seeds] + [("after 1 epoch", seed) for seed in args.trained_seeds]
    for state, seed in states:
        if state == "initial":
            torch.manual_seed(seed)
            model = build_model("mnist_cnn", 10).to(device)
        else:
            config = load_config("mnist_sgd").replace(epochs=1, seed=seed, train_subset=args.train_subset)
            with tempfile.TemporaryDirectory() as out:
                options = RunOptions(out_dir=Path(out), device=str(device), progress=False, tensorboard=False)
                trainer = Trainer(config, options, data=data)
                trainer.run()
            model = trainer.net
        results = rows(model, clean, subsets)
        _, full_k_z, full_lr, full_seconds = results[0]
        for n, k_z, lr, seconds in results:
            print(
                f"| {state}, seed {seed} | {n} | {n / len(clean):.0%} | {k_z:.2f} | {k_z / full_k_z:.3f} | {lr:.3f} | "
                f"{lr / full_lr:.3f} | {seconds:.2f} | {seconds / full_seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
