"""Training throughput (images/s) and epoch time with the experiments' data path.

Times full training steps (batched on-device augmentation, forward, backward, optimizer step) of
each model on random data of its dataset's shape, after warm-up, and prints a table. The epoch time
is for the dataset's full training set (60,000 MNIST or 50,000 CIFAR images) at that throughput.

    python benchmarks/throughput.py --device cuda --amp bf16 --channels-last
    python benchmarks/throughput.py --models mnist_cnn --steps 5          # a CPU smoke run
"""

from __future__ import annotations

import argparse
import time

import torch

from lipschitz_lr_experiments.data import DATASETS, TensorBatches
from lipschitz_lr_experiments.devices import AMP_MODES, describe_device, resolve_device
from lipschitz_lr_experiments.loop import train_step
from lipschitz_lr_experiments.models import build_model

SETUPS = {  # model -> (dataset, image shape, classes, training-set size, the configs' batch size)
    "mnist_cnn": ("mnist", (1, 28, 28), 10, 60_000, 256),
    "resnet20_v1": ("cifar10", (3, 32, 32), 10, 50_000, 128),
    "resnet164_v2": ("cifar100", (3, 32, 32), 100, 50_000, 128),
    "densenet40": ("cifar10", (3, 32, 32), 10, 50_000, 128),
}


def measure(name: str, args: argparse.Namespace, device: torch.device) -> tuple[int, float, float]:
    """(batch size, images per second, seconds per full training epoch) of one model."""
    dataset, shape, classes, train_size, config_batch_size = SETUPS[name]
    batch_size = args.batch_size or config_batch_size
    n = batch_size * (args.steps + args.warmup)
    g = torch.Generator().manual_seed(0)
    images = torch.rand((n, *shape), generator=g).to(device)
    labels = torch.randint(0, classes, (n,), generator=g).to(device)
    loader = TensorBatches(images, labels, batch_size, shuffle=True, augmentation=DATASETS[dataset].augmentation)
    model = build_model(name, classes).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.compile:
        model = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")  # as the trainer does
    model.train()
    seen, start = 0, 0.0
    for step, (x, y) in enumerate(loader):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, seen = time.perf_counter(), 0
        train_step(model, optimizer, scaler, x, y, args.amp, args.channels_last)
        seen += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rate = seen / (time.perf_counter() - start)
    return batch_size, rate, train_size / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, help="default: the configs' (256 for MNIST, 128 for CIFAR)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", default="off", choices=AMP_MODES)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(
        f"# {describe_device(device)}, torch {torch.__version__}, amp {args.amp}, "
        f"channels_last {args.channels_last}, compile {args.compile}, {args.steps} timed steps"
    )
    print("| model | batch | images/s | epoch time (s) |")
    print("|---|---|---|---|")
    for name in args.models:
        batch_size, rate, epoch = measure(name, args, device)
        print(f"| {name} | {batch_size} | {rate:.0f} | {epoch:.2f} |")


if __name__ == "__main__":
    main()
