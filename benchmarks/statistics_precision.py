"""K_z from a reference pass in reduced precision against the fp32 eager pass (the paper's).

``AdaptiveLR.step()`` runs its pass under whatever autocast context it is called in, and on a
``channels_last`` model as it is; the norms are accumulated in float64 either way. This prints how
far K_z (and so the learning rate, 1/K) moves when the pass runs in bf16 autocast and/or on a
channels_last model, for the MNIST CNN at its initial weights (batch 256), and what the pass costs.

    python benchmarks/statistics_precision.py --data-dir ../shared/data --seeds 0 1 2
    python benchmarks/statistics_precision.py --device cuda --seeds 0 1 2      # adds fp16 on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from lipschitz_lr.statistics import collect_statistics
from lipschitz_lr_experiments.data import TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import autocast, describe_device
from lipschitz_lr_experiments.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-subset", type=int, help="the first N training images only (smoke runs)")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_dataset("mnist", args.data_dir, device=device, train_subset=args.train_subset)
    clean = TensorBatches(data.train_images, data.train_labels, 256)
    modes = [("off", False), ("off", True), ("bf16", False), ("bf16", True)]
    if device.type == "cuda":
        modes += [("fp16", False), ("fp16", True)]
    print(f"# MNIST CNN at its initial weights, {len(clean)} batches of 256, {describe_device(device)}")
    print("| seed | autocast | channels_last | K_z | K_z / fp32 eager | pass (s) |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build_model("mnist_cnn", 10).to(device)
        reference = None
        for amp, channels_last in modes:
            model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            start = time.perf_counter()
            with autocast(device, amp):
                k_z = collect_statistics(model, clean).k_z
            seconds = time.perf_counter() - start
            reference = reference or k_z
            print(
                f"| {seed} | {amp} | {channels_last} | {k_z:.4f} | {k_z / reference:.5f} | {seconds:.2f} |", flush=True
            )


if __name__ == "__main__":
    main()
