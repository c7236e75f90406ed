"""The benchmark scripts run and print their tables (no timing is asserted: speed is read, not tested)."""

import math
import re
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
        "--pass-repeats",
        "2",
        "--data-dir",
        str(data_dir),
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "mode" not in line]
    assert rows == ["constant", "reference", "hook"]
    assert "| constant |" in out and "1.000 |" in out
    assert "# the reference statistics pass alone" in out
    ratio = re.search(r"pass-to-bare-forward ratio: ([\d.]+) .*per-run ratios ([\d.]+), ([\d.]+)\)", out)
    assert ratio and float(ratio.group(1)) > 0


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
    assert "| lipschitz (momentum) | - | 1/1 | 1.0 |" in out and "| cosine | 0.05 | 1/1 | 1.0 |" in out
    # the sweep: each rate trains seed 0 once (1 epoch each), the best is kept, its cost is added
    out = subprocess.run([*command, "--sweep-lrs", "0.01", "0.1"], cwd=REPO, capture_output=True, text=True, check=True)
    cosine = next(line for line in out.stdout.splitlines() if line.startswith("| cosine |")).split("|")
    assert cosine[2].strip() == "0.01" and cosine[6].strip() == "2" and cosine[7].strip() == "3.0"
    lipschitz = next(line for line in out.stdout.splitlines() if line.startswith("| lipschitz (momentum) |")).split("|")
    assert lipschitz[6].strip() == "0" and lipschitz[7].strip() == "1.0"


def test_statistics_subset_prints_each_subset_against_the_full_pass(data_dir):
    command = [sys.executable, "benchmarks/statistics_subset.py", "--data-dir", str(data_dir), "--train-subset", "512"]
    command += ["--seeds", "0", "--trained-seeds", "--subsets", "1"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| initial")]
    assert [row[2].strip() for row in rows] == ["2", "1"]  # 512 images: 2 batches of 256, then the first one
    assert rows[0][5].strip() == "1.000" and float(rows[1][5]) <= 1.0  # a subset's K_z never exceeds the full pass's


def test_statistics_precision_prints_each_mode_against_fp32(data_dir):
    command = [sys.executable, "benchmarks/statistics_precision.py", "--data-dir", str(data_dir)]
    command += ["--train-subset", "256", "--seeds", "0"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| 0 |")]
    assert [(row[2].strip(), row[3].strip()) for row in rows] == [
        ("off", "False"),
        ("off", "True"),
        ("bf16", "False"),
        ("bf16", "True"),
    ]
    assert rows[0][5].strip() == "1.00000" and all(0.9 < float(row[5]) < 1.1 for row in rows)
