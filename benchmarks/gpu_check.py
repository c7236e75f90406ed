"""The GPU check: one command that confirms on a GPU what the CPU cannot, and writes one markdown report.

    python benchmarks/gpu_check.py --data-dir DATA --out OUT [--budget-s 480]

Sections, in order, each timed and isolated (a failing section is reported with its error, and the
rest still run); a section that would start after ``--budget-s`` is reported as skipped:

1. the environment (torch, CUDA, cuDNN, the GPU, TF32 defaults);
2. ``pytest -m gpu tests/test_gpu.py`` (K_z on CUDA against the CPU, a run on CUDA, CPU data refused
   for a CUDA run, a one-rank NCCL all-reduce on the model's GPU, the closed-form bounds on CUDA tensors);
3. K_z of the MNIST CNN and ResNet-20 at initialisation on CPU, CUDA fp32 (TF32 off), TF32, bf16
   autocast and channels_last;
4. device synchronisations counted (``torch.cuda.set_sync_debug_mode``) in a training epoch, the
   reference pass and an evaluation;
5. LipschitzLR SGD on MNIST under fp16 (GradScaler: skipped steps counted) and bf16;
6. an exact resume on CUDA (``--deterministic``): three epochs against one, stopped, and two resumed;
7. hook mode on an inductor-compiled model (rates finite, no recompile-limit hit);
8. throughput of the four models (fp32; bf16 + channels_last) and the scheduler's overhead
   (``benchmarks/throughput.py``, ``benchmarks/scheduler_overhead.py``);
9. the MNIST rows of Table 1 (seed 0) for as many epochs as the remaining budget allows, through
   ``lipschitz-lr reproduce``; their histories are packed into ``mnist_histories.tar.gz``.

On a GPU machine with no network and its own torch (the device tool's H200 had torch 2.11, older than
our pin): ``pip install --no-deps --no-build-isolation -e .`` (or ``PYTHONPATH=.`` from the tree),
MNIST carried as a tarball (about 11 MB) and unpacked to ``DATA/MNIST/raw``; see results/gpu_check.md
for the exact command. ``--smoke`` runs every section that needs no GPU on tiny sizes, on the CPU
(the test suite does, so the script keeps working where no GPU is).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from lipschitz_lr import AdaptiveLR, collect_statistics
from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import DataSplits, TensorBatches, load_dataset
from lipschitz_lr_experiments.devices import autocast, describe_device, resolve_device
from lipschitz_lr_experiments.loop import evaluate, train_epoch
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.train import RunOptions, Trainer

REPO = Path(__file__).resolve().parents[1]
MNIST_ROWS = ("mnist_sgd", "mnist_sgd_hook", "mnist_momentum", "mnist_adam")


class Check:
    """The report under construction, written to disk after every section (a killed check keeps its lines)."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args, self.device = args, device
        self.data: DataSplits | None = None
        self.started = time.perf_counter()
        self.lines: list[str] = []
        self.path = args.out / "gpu_check.md"

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.started)

    def section(self, title: str, body: Callable[[], list[str]], *, needs_cuda: bool = False) -> None:
        self.lines.append(f"\n## {title}\n")
        if needs_cuda and self.device.type != "cuda":
            self.lines.append("skipped: needs CUDA")
        elif self.left() <= 0:
            self.lines.append(f"skipped: the budget of {self.args.budget_s:.0f} s was spent")
        else:
            start = time.perf_counter()
            try:
                self.lines += body()
            except Exception:  # one section's failure is a finding, not the end of the check
                self.lines.append("FAILED:\n\n```\n" + traceback.format_exc()[-3000:] + "```")
            self.lines.append(f"\n({time.perf_counter() - start:.1f} s)")
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")


def run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    environment = {**os.environ, **(env or {})}
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=max(timeout, 10), env=environment
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def environment(device: torch.device) -> list[str]:
    cuda = torch.version.cuda or "none"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
    return [
        f"- device: {describe_device(device)}",
        f"- torch {torch.__version__}, CUDA {cuda}, cuDNN {cudnn}, Python {platform.python_version()}",
        f"- defaults: TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN "
        f"{torch.backends.cudnn.allow_tf32}, float32 matmul precision {torch.get_float32_matmul_precision()}",
    ]


def gpu_tests(check: Check) -> list[str]:
    env_note = "(LIPSCHITZ_LR_DATA is the check's --data-dir)"
    code, output = run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
        check.left(),
        env={"LIPSCHITZ_LR_DATA": str(check.args.data_dir)},
    )
    return [f"`pytest -m gpu tests/test_gpu.py` {env_note}: exit {code}", "", "```", output[-2500:], "```"]


def precision(check: Check) -> list[str]:
    """K_z at initialisation, the same batches, in each precision; relative to the CPU's fp32."""
    smoke = check.args.smoke
    rows = ["| model | setting | K_z | relative to CPU |", "|---|---|---|---|"]
    g = torch.Generator().manual_seed(0)
    for name, shape in (("mnist_cnn", (1, 28, 28)), ("resnet20_v1", (3, 32, 32))):
        batches = [(torch.rand(64 if smoke else 128, *shape, generator=g), None) for _ in range(2 if smoke else 8)]
        torch.manual_seed(0)
        reference = build_model(name, 10)
        cpu = collect_statistics(reference, batches).k_z
        rows.append(f"| {name} | CPU fp32 | {cpu:.6g} | 1 |")
        settings = (
            ("CUDA fp32 (TF32 off)", False, "off", False),
            ("CUDA TF32", True, "off", False),
            ("CUDA bf16 autocast", False, "bf16", False),
            ("CUDA fp32, channels_last", False, "off", True),
        )
        for label, tf32, amp, channels_last in settings if check.device.type == "cuda" else ():
            flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            try:
                model = build_model(name, 10).to(check.device)
                model.load_state_dict(reference.state_dict())
                memory = torch.channels_last if channels_last else torch.contiguous_format
                model = model.to(memory_format=memory)
                moved = [(x.to(check.device).contiguous(memory_format=memory), None) for x, _ in batches]
                with autocast(check.device, amp):
                    k_z = collect_statistics(model, moved).k_z
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
            rows.append(f"| {name} | {label} | {k_z:.6g} | {k_z / cpu:.6f} |")
    return rows


def syncs(check: Check) -> list[str]:
    """Device synchronisations per phase, as CUDA's sync debug mode reports them."""
    data = check.data
    batches = TensorBatches(data.train_images[:2560], data.train_labels[:2560], 256, shuffle=True)
    model = build_model("mnist_cnn", 10).to(check.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler(check.device.type, enabled=False)

    def count(work: Callable[[], object]) -> int:
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                work()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    phases = {
        "training epoch, 10 batches (no progress bar)": lambda: train_epoch(model, optimizer, scaler, batches),
        "augmented training epoch, 10 batches": lambda: train_epoch(
            model, optimizer, scaler, TensorBatches(batches.images, batches.labels, 256, augmentation=data.augmentation)
        ),
        "reference pass, 10 batches": lambda: collect_statistics(
            model, TensorBatches(batches.images, batches.labels, 256)
        ),
        "evaluation, 1000 images": lambda: evaluate(model, data.test_images[:1000], data.test_labels[:1000]),
    }
    rows = ["| phase | synchronisations |", "|---|---|"]
    rows += [f"| {name} | {count(work)} |" for name, work in phases.items()]
    return rows


def _trainer(check: Check, name: str, out: Path, epochs: int = 2, **options: object) -> Trainer:
    """A Trainer of the bundled config ``name`` on the first images of the check's MNIST."""
    n_train, n_test = (512, 100) if check.args.smoke else (10_000, 2000)
    config = load_config(name).replace(epochs=epochs, train_subset=n_train, test_subset=n_test)
    run_options = RunOptions(out_dir=out, device=str(check.device), progress=False, tensorboard=False, **options)
    data = check.data
    assert data is not None
    data = dataclasses.replace(
        data,
        train_images=data.train_images[:n_train],
        train_labels=data.train_labels[:n_train],
        test_images=data.test_images[:n_test],
        test_labels=data.test_labels[:n_test],
    )
    return Trainer(config, run_options, data=data)


def amp_modes(check: Check) -> list[str]:
    rows = ["| amp | lr per epoch | steps taken / batches | test accuracy per epoch |", "|---|---|---|---|"]
    for amp in ("bf16", "fp16"):
        with tempfile.TemporaryDirectory() as out:
            trainer = _trainer(check, "mnist_sgd", Path(out), amp=amp)
            taken = [0]
            trainer.optimizer.register_step_post_hook(lambda *_, taken=taken: taken.__setitem__(0, taken[0] + 1))
            history = trainer.run()
        batches = len(trainer.train_loader) * len(history)
        lrs = ", ".join(f"{row['lr']:.4g}" for row in history)
        accuracies = ", ".join(f"{row['test_acc']:.4f}" for row in history)
        rows.append(f"| {amp} | {lrs} | {taken[0]} / {batches} | {accuracies} |")
    return rows


def exact_resume(check: Check) -> list[str]:
    def without_time(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
    )
    try:
        return _exact_resume(check, without_time)
    finally:  # the later sections measure the defaults again
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.backends.cudnn.deterministic = saved[2]
        torch.use_deterministic_algorithms(saved[3])


def _exact_resume(check: Check, without_time: Callable[[list[dict]], list[dict]]) -> list[str]:
    with tempfile.TemporaryDirectory() as out:
        full = _trainer(check, "mnist_momentum", Path(out) / "full", epochs=3, deterministic=True).run()
        _trainer(
            check,
            "mnist_momentum",
            Path(out) / "cut",
            epochs=3,
            deterministic=True,
            on_epoch_end=lambda epoch: epoch == 1,
        ).run()
        resumed = _trainer(check, "mnist_momentum", Path(out) / "cut", epochs=3, deterministic=True, resume=True).run()
    same = without_time(full) == without_time(resumed)
    return [
        f"three epochs uninterrupted against one, stopped, and two resumed (--deterministic): "
        f"{'identical histories' if same else 'DIFFERENT histories'}",
        f"- lr uninterrupted: {[round(r['lr'], 6) for r in full]}",
        f"- lr resumed: {[round(r['lr'], 6) for r in resumed]}",
    ]


def compiled_hook(check: Check) -> list[str]:
    torch._dynamo.reset()
    model = build_model("mnist_cnn", 10).to(check.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    compiled = torch.compile(model)
    data = check.data
    loader = TensorBatches(data.train_images[:2560], data.train_labels[:2560], 256, shuffle=True)
    scheduler = AdaptiveLR(
        optimizer,
        compiled,
        TensorBatches(loader.images, loader.labels, 256),
        num_classes=10,
        statistics="hook",
        initial_lr=0.05,
    )
    scaler = torch.amp.GradScaler(check.device.type, enabled=False)
    with torch._dynamo.config.patch(recompile_limit=4, fail_on_recompile_limit_hit=True):
        for _ in range(3):
            train_epoch(compiled, optimizer, scaler, loader)
            scheduler.step()
    rates = [record.lr for record in scheduler.history]
    finite = all(math.isfinite(r) and r > 0 for r in rates)
    return [
        f"inductor, hook mode, 3 epochs of 10 batches: rates {[round(r, 5) for r in rates]} "
        f"({'finite' if finite else 'NOT FINITE'}), no recompile-limit hit"
    ]


def benchmarks(check: Check) -> list[str]:
    lines = []
    commands = [
        ["benchmarks/throughput.py", "--device", "cuda", "--steps", "30"],
        ["benchmarks/throughput.py", "--device", "cuda", "--steps", "30", "--amp", "bf16", "--channels-last"],
        [
            "benchmarks/scheduler_overhead.py",
            "--device",
            "cuda",
            "--images",
            "20000",
            "--epochs",
            "3",
            "--data-dir",
            str(check.args.data_dir),
        ],
        [
            "benchmarks/scheduler_overhead.py",
            "--device",
            "cuda",
            "--model",
            "resnet20_v1",
            "--images",
            "20000",
            "--epochs",
            "3",
        ],
    ]
    for command in commands:
        if check.left() <= 0:
            lines.append(f"\n`{' '.join(command)}`: skipped, the budget was spent")
            continue
        code, output = run([sys.executable, *command], check.left())
        lines += [f"\n`python {' '.join(command)}` (exit {code}):\n", output[-2500:]]
    return lines


def mnist_rows(check: Check) -> list[str]:
    per_epoch_s = 6.0  # a cautious bound for one MNIST epoch with its pass and evaluation on a GPU, with start-up
    epochs = max(1, min(20, int((check.left() - 60) / (per_epoch_s * len(MNIST_ROWS)))))
    rows = MNIST_ROWS
    if check.args.smoke:
        epochs, rows = 1, MNIST_ROWS[:1]
    root = Path(tempfile.mkdtemp()) / "mnist"
    command = [
        sys.executable,
        "-m",
        "lipschitz_lr_experiments",
        "reproduce",
        "--rows",
        *rows,
        "--seeds",
        "0",
        "--epochs",
        str(epochs),
        "--out",
        str(root),
        "--data-dir",
        str(check.args.data_dir),
        "--devices",
        str(check.device),
    ]
    if check.args.smoke:
        command += ["--set", "train_subset=512", "--set", "test_subset=200"]
    code, output = run(command, check.left() + 30)
    archive = check.args.out / "mnist_histories.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(root.rglob("*.json")):
            if "figures" not in path.parts and path.name in ("history.json", "summary.json"):
                tar.add(path, arcname=str(path.relative_to(root)))
    table = root / "figures" / "table1.md"
    mnist = [line for line in table.read_text().splitlines() if "MNIST" in line] if table.exists() else []
    header = [
        "| experiment | config | paper (%) | ours (%) | difference | epochs | seeds | device | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    return [
        f"`lipschitz-lr reproduce --rows {' '.join(rows)} --seeds 0 --epochs {epochs}` (exit {code}); "
        f"histories in {archive.name}",
        "",
        *header,
        *mnist,
        "",
        "```",
        output[-1500:],
        "```",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="holds MNIST/raw")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=480.0, help="no section starts after this many seconds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; on the CPU, the sections that need no GPU")
    args = parser.parse_args()
    device = resolve_device(args.device)
    check = Check(args, device)
    check.lines.append(f"# GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    check.lines.append(f"\n`python benchmarks/gpu_check.py --data-dir DATA --out OUT --budget-s {args.budget_s:.0f}`")
    check.data = load_dataset("mnist", args.data_dir, device=device, train_subset=None if not args.smoke else 4096)
    check.section("Environment", lambda: environment(device))
    check.section("GPU tests", lambda: gpu_tests(check), needs_cuda=True)
    check.section("K_z by precision", lambda: precision(check))
    check.section("Synchronisations", lambda: syncs(check), needs_cuda=True)
    check.section("fp16 against bf16, LipschitzLR SGD", lambda: amp_modes(check), needs_cuda=True)
    check.section("Exact resume", lambda: exact_resume(check))
    check.section("Hook mode under inductor", lambda: compiled_hook(check), needs_cuda=True)
    check.section("Throughput and overhead", lambda: benchmarks(check), needs_cuda=True)
    check.section("MNIST rows of Table 1", lambda: mnist_rows(check))
    total = time.perf_counter() - check.started
    check.lines.append(f"\nTotal {total:.0f} s on {describe_device(device)}.")
    check.write()
    print(check.path.read_text())


if __name__ == "__main__":
    main()
