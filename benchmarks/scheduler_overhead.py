"""Scheduler overhead per epoch: constant LR vs AdaptiveLR's reference pass vs its hook mode.

Prints a table of median epoch times and their ratios to constant-LR training. Real MNIST is used
when found (``--data-dir`` or ``$LIPSCHITZ_LR_DATA``), otherwise random data of the same shape;
``--model resnet20_v1`` times ResNet-20 on CIFAR-shaped random data. ``--amp``, ``--channels-last``
and ``--compile`` train as the harness's options do; AdaptiveLR's pass then runs as the trainer
runs it, in fp32 (outside autocast) on the same (channels_last) weights, eagerly on the module
inside the compiled wrapper (the library's choice: no recompiles), while the bare forward it is
compared with runs the compiled model under the autocast, the least a pass could cost.

    python benchmarks/scheduler_overhead.py                      # MNIST CNN, CPU
    python benchmarks/scheduler_overhead.py --model resnet20_v1 --device cuda --images 50000
    python benchmarks/scheduler_overhead.py --device cuda --amp bf16 --channels-last --compile
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
from lipschitz_lr_experiments.devices import AMP_MODES, autocast, describe_device
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


def build(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model (seed 0, channels_last if asked) and what trains it: itself or its compiled wrapper."""
    torch.manual_seed(0)
    model = build_model(args.model, 10).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, (torch.compile(model, backend=args.compile_backend) if args.compile else model)


def epoch_runner(
    mode: str, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> Callable[[], float]:
    """A fresh model, optimizer and (for ``reference``/``hook``) AdaptiveLR; the callable trains one epoch
    (with the scheduler's step) and returns its wall time."""
    model, trained = build(args, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = TensorBatches(x, y, args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    clean = TensorBatches(x, y, args.batch_size)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")  # as the trainer does
    scheduler = None
    if mode != "constant":
        # initial_lr and max_lr keep the timing runs numerically tame; they do not change the cost.
        scheduler = AdaptiveLR(
            optimizer, trained, clean, num_classes=10, variant="momentum", statistics=mode, initial_lr=0.01, max_lr=0.05
        )

    def run_epoch() -> float:
        synchronize(device)
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            train_step(trained, optimizer, scaler, xb, yb, args.amp, args.channels_last)
        if scheduler is not None:
            scheduler.step()  # outside autocast, as the trainer steps it: the reference pass runs in fp32
        synchronize(device)
        return time.perf_counter() - start

    return run_epoch


def pass_runners(
    args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> dict[str, Callable[[], float]]:
    """Two timed callables over the same model, images and batch size: the reference statistics pass
    (:func:`collect_statistics`, the cost the reference mode adds to an epoch) and a bare inference
    forward (eval mode, no grad, of the compiled model under ``--compile``), the least that pass can
    cost. The pass runs in fp32 as the trainer runs it (AdaptiveLR steps outside autocast); the bare
    forward runs under the ``--amp`` autocast, as the training forward does."""
    model, trained = build(args, device)
    clean = TensorBatches(x, y, args.batch_size)

    def timed(work: Callable[[], object], amp: str) -> Callable[[], float]:
        def run() -> float:
            synchronize(device)
            start = time.perf_counter()
            with autocast(device, amp):
                work()
            synchronize(device)
            return time.perf_counter() - start

        return run

    @torch.no_grad()
    def bare_forward() -> None:
        trained.eval()
        for xb, _ in clean:
            trained(xb)
        trained.train()

    return {
        "statistics pass": timed(lambda: collect_statistics(model, clean), "off"),
        "bare forward": timed(bare_forward, args.amp),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist_cnn", choices=("mnist_cnn", "resnet20_v1"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=6000, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per mode (the median is reported)")
    parser.add_argument("--pass-repeats", type=int, default=5, help="interleaved runs of the pass and a bare forward")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--amp",
        default="off",
        choices=AMP_MODES,
        help="autocast for training (the pass runs in fp32, as in the trainer)",
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="train a torch.compile'd model")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default: inductor)")
    args = parser.parse_args()
    device = torch.device(args.device)
    x, y, source = make_data(args.model, args.images, device, args.data_dir)
    print(
        f"# {args.model}, {args.images} {source} images, batch {args.batch_size}, {describe_device(device)}, "
        f"torch {torch.__version__}, amp {args.amp}, channels_last {args.channels_last}, "
        f"compile {args.compile_backend if args.compile else False}, "
        f"median of {args.epochs} interleaved epochs per mode"
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
    print("| mode | epoch time (s) | ratio to constant LR |")
    print("|---|---|---|")
    for mode, seconds in results.items():
        print(f"| {mode} | {seconds:.3f} | {seconds / results['constant']:.3f} |")
    # The pass against its limit, a bare inference forward over the same images, interleaved likewise.
    passes = pass_runners(args, x, y, device)
    for run in passes.values():
        run()  # warm-up
    pass_times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.pass_repeats):
        for name, run in passes.items():
            pass_times[name].append(run())
    pass_alone, bare = (statistics.median(pass_times[name]) for name in passes)
    print(
        f"# the reference statistics pass alone: {pass_alone:.3f} s, {pass_alone / results['constant']:.3f} of a "
        f"constant-LR epoch; a bare inference forward over the same images: {bare:.3f} s"
    )
    ratios = [p / b for p, b in zip(pass_times["statistics pass"], pass_times["bare forward"], strict=True)]
    print(
        f"pass-to-bare-forward ratio: {pass_alone / bare:.3f} (medians of {args.pass_repeats} interleaved runs; "
        f"per-run ratios {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
