"""The benchmark scripts run and print their tables (no timing is asserted: speed is read, not tested)."""

import subprocess
import sys
from pathlib import Path

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
