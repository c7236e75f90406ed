"""Scheduler overhead per epoch: constant LR vs AdaptiveLR's reference pass vs its hook mode.

Prints a table of median epoch times and their ratios to constant-LR training. Real MNIST is used
when found (``--data-dir`` or ``$LIPSCHITZ_LR_DATA``), otherwise random data of the same shape;
``--model resnet20_v1`` times ResNet-20 on CIFAR-shaped random data.

    python benchmarks/scheduler_overhead.py                      # MNIST CNN, CPU
    python benchmarks/scheduler_overhead.py --model resnet20_v1 --device cuda --images 50000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.statistics import collect_statistics
from lipschitz_lr_experiments.data import TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import describe_device
from lipschitz_lr_experiments.loop import train_step
from lipschitz_lr_experiments.models import build_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(model_name: str, images: int, device: torch.device, data_dir: str | None) -> tuple[torch.Tensor, ...]:
    if model_name == "mnist_cnn":
        try:
            data = load_dataset("mnist", data_dir, device=device, train_subset=images)
            return data.train_images, data.train_labels, "MNIST"
        except FileNotFoundError:
            pass
        shape = (images, 1, 28, 28)
    else:
        shape = (images, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=g).to(device), torch.randint(0, 10, (images,), generator=g).to(device), "random"


def epoch_runner(
    mode: str, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> Callable[[], float]:
    """A fresh model, optimizer and (for ``reference``/``hook``) AdaptiveLR; the callable trains one epoch
    (with the scheduler's step) and returns its wall time."""
    torch.manual_seed(0)
    model = build_model(args.model, 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = TensorBatches(x, y, args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    clean = TensorBatches(x, y, args.batch_size)
    no_scaling = torch.amp.GradScaler(device.type, enabled=False)  # fp32, as the trainer without --amp
    scheduler = None
    if mode != "constant":
        # initial_lr and max_lr keep the timing runs numerically tame; they do not change the cost.
        scheduler = AdaptiveLR(
            optimizer, model, clean, num_classes=10, variant="momentum", statistics=mode, initial_lr=0.01, max_lr=0.05
        )

    def run_epoch() -> float:
        synchronize(device)
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            train_step(model, optimizer, no_scaling, xb, yb)
        if scheduler is not None:
            scheduler.step()
        synchronize(device)
        return time.perf_counter() - start

    return run_epoch


def time_statistics_pass(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Wall time of :func:`collect_statistics` alone: the cost the reference mode adds to an epoch."""
    torch.manual_seed(0)
    model = build_model(args.model, 10).to(device)
    clean = TensorBatches(x, y, args.batch_size)
    synchronize(device)
    start = time.perf_counter()
    collect_statistics(model, clean)
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist_cnn", choices=("mnist_cnn", "resnet20_v1"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=6000, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per mode (the median is reported)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    device = torch.device(args.device)
    x, y, source = make_data(args.model, args.images, device, args.data_dir)
    print(
        f"# {args.model}, {args.images} {source} images, batch {args.batch_size}, {describe_device(device)}, "
        f"torch {torch.__version__}, median of {args.epochs} interleaved epochs per mode"
    )
    runners = {mode: epoch_runner(mode, args, x, y, device) for mode in ("constant", "reference", "hook")}
    for run_epoch in runners.values():
        run_epoch()  # warm-up (allocator, kernels, the hook's first registration)
    # The modes take turns, epoch by epoch, so a drift in the machine's speed hits all three alike.
    times: dict[str, list[float]] = {mode: [] for mode in runners}
    for _ in range(args.epochs):
        for mode, run_epoch in runners.items():
            times[mode].append(run_epoch())
    results = {mode: statistics.median(seconds) for mode, seconds in times.items()}
    pass_alone = statistics.median(time_statistics_pass(args, x, y, device) for _ in range(args.epochs))
    print("| mode | epoch time (s) | ratio to constant LR |")
    print("|---|---|---|")
    for mode, seconds in results.items():
        print(f"| {mode} | {seconds:.3f} | {seconds / results['constant']:.3f} |")
    print(
        f"# the reference statistics pass alone (one eval forward over the set): {pass_alone:.3f} s, "
        f"{pass_alone / results['constant']:.3f} of a constant-LR epoch"
    )


if __name__ == "__main__":
    main()
