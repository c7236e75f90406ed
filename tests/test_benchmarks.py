"""The benchmark scripts run and print their tables (no timing is asserted: speed is read, not tested)."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_scheduler_overhead_prints_a_ratio_table(data_dir):
    command = [
        sys.executable,
        "benchmarks/scheduler_overhead.py",
        "--images",
        "128",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--data-dir",
        str(data_dir),
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "mode" not in line]
    assert rows == ["constant", "reference", "hook"]
    assert "| constant |" in out and "1.000 |" in out
    assert "# the reference statistics pass alone" in out


@pytest.mark.parametrize("precision", [[], ["--amp", "fp16", "--channels-last"]], ids=["fp32", "fp16"])
def test_throughput_prints_images_per_second(precision):
    command = [
        sys.executable,
        "benchmarks/throughput.py",
        "--models",
        "mnist_cnn",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--batch-size",
        "16",
        *precision,
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| mnist_cnn"))
    batch, images_per_second, epoch_seconds = (float(cell) for cell in row.split("|")[2:5])
    assert batch == 16 and images_per_second >= 0
    # The table rounds images/s to a whole number and seconds to 0.01: the epoch time must lie in the
    # interval those roundings allow, whatever the machine's speed (a 1% check failed at low rates).
    slowest = math.inf if images_per_second <= 0.5 else 60_000 / (images_per_second - 0.5)
    assert 60_000 / (images_per_second + 0.5) - 0.005 <= epoch_seconds <= slowest + 0.005


def test_time_to_accuracy_reports_each_method(data_dir):
    command = [
        sys.executable,
        "benchmarks/time_to_accuracy.py",
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir),
        "--train-subset",
        "256",
        "--max-epochs",
        "1",
        "--target",
        "0.0",
        "--seeds",
        "0",
        "--methods",
        "lipschitz (momentum)",
        "cosine",
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "| lipschitz (momentum) | 1/1 | 1.0 |" in out and "| cosine | 1/1 | 1.0 |" in out
