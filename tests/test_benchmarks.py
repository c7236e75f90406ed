"""The benchmark scripts run and print their tables (no timing is asserted: speed is read, not tested)."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.train import RunOptions, run_experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "mode",
    [[], ["--amp", "bf16", "--channels-last", "--compile", "--compile-backend", "aot_eager"]],
    ids=["fp32", "bf16-channels-last-compiled"],
)
def test_scheduler_overhead_prints_a_ratio_table(data_dir, mode):
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
        *mode,
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert ("amp bf16, channels_last True, compile aot_eager" in out) == bool(mode)
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


def _table_row(out: str, method: str) -> list[str]:
    return [
        cell.strip() for cell in next(line for line in out.splitlines() if line.startswith(f"| {method} |")).split("|")
    ]


def test_time_to_accuracy_reports_each_method(data_dir, tmp_path):
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
    # The sweep: 0.01 reaches the target at epoch 1, so 0.1 (listed later, it would lose a tie) is not
    # trained; the sweep cost 1 epoch, and the tuned rate's seed-0 run is the sweep's own.
    record = tmp_path / "runs.jsonl"
    sweep = [*command, "--sweep-lrs", "0.01", "0.1", "--record", str(record)]
    out = subprocess.run(sweep, cwd=REPO, capture_output=True, text=True, check=True).stdout
    cosine = _table_row(out, "cosine")
    assert cosine[2:5] == ["0.01", "1/1", "1.0"] and cosine[8:10] == ["1", "2.0"]
    assert _table_row(out, "lipschitz (momentum)")[8:10] == ["0", "1.0"]
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(run["method"], run["lr"]) for run in runs] == [("lipschitz (momentum)", None), ("cosine", 0.01)]
    # --no-train prints the same table from the record; a seed it lacks reads "not run"
    again = subprocess.run([*sweep, "--no-train"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert again.split("\n", 1)[1] == out.split("\n", 1)[1]
    more = subprocess.run([*sweep, "--no-train", "--seeds", "0", "1"], cwd=REPO, capture_output=True, text=True)
    assert _table_row(more.stdout, "cosine")[3] == "1/2" and _table_row(more.stdout, "cosine")[5] == "1, not run"
    assert len(record.read_text().splitlines()) == 2  # nothing trained again


def test_time_to_accuracy_stops_a_losing_sweep_rate(data_dir, tmp_path):
    """A rate listed after one that reached the target at epoch b trains at most b - 1 epochs."""
    record = tmp_path / "runs.jsonl"
    command = [sys.executable, "benchmarks/time_to_accuracy.py", "--device", "cpu", "--data-dir", str(data_dir)]
    command += ["--train-subset", "256", "--max-epochs", "2", "--seeds", "0", "--methods", "constant"]
    # a target only the second epoch can meet: the accuracy after epoch 1 decides it
    first = subprocess.run(
        [*command, "--target", "0.0", "--sweep-lrs", "0.01", "--record", str(record)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| constant | 0.01 | 1/1 | 1.0 |" in first.stdout
    # Planted: 0.01 reached the target at epoch 2. Then 0.1 may train 1 epoch, and without reaching
    # the target in it, 0.01 stays the tuned rate; the sweep cost is 2 + 1 epochs.
    run = json.loads(record.read_text())
    planted = {**run, "target": 0.999, "reached": 2, "trained": 2, "test_acc": [0.5, 0.9995]}
    record.write_text(json.dumps(planted) + "\n")
    out = subprocess.run(
        [*command, "--target", "0.999", "--sweep-lrs", "0.01", "0.1", "--record", str(record)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "# sweep constant, lr 0.1: not reached (1 epochs)" in out
    assert _table_row(out, "constant")[2] == "0.01" and _table_row(out, "constant")[8:10] == ["3", "5.0"]
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert runs[-1]["lr"] == 0.1 and runs[-1]["cap"] == 1 and runs[-1]["trained"] == 1


def test_time_to_accuracy_runs_a_peer_past_its_best_and_resumes_a_stopped_run(data_dir, tmp_path):
    """``--stop best``: on past the target until an epoch is not the best; the rates and set-up seconds are
    recorded; a run whose process stopped mid-way resumes from its work folder; old lines still read."""
    record = tmp_path / "peers.jsonl"
    command = [sys.executable, "benchmarks/time_to_accuracy.py", "--device", "cpu", "--data-dir", str(data_dir)]
    command += ["--train-subset", "256", "--max-epochs", "3", "--seeds", "0", "--stop", "best", "--target", "0.0"]
    command += ["--report", "0.0", "0.999", "--record", str(record), "--methods", "prodigy"]
    # a process stopped after epoch 1 of 3: its checkpoint is in the work folder
    work = tmp_path / "peers.jsonl.runs" / "prodigy-s0-lrNone-e3-t0.0-best-n256"
    config = load_config("mnist_prodigy").replace(epochs=3, seed=0, train_subset=256)
    run_experiment(config.replace(epochs=1), RunOptions(out_dir=work, data_dir=data_dir, progress=False))
    first_epoch = json.loads((work / "history.json").read_text())[0]
    figure = tmp_path / "peers.png"
    out = subprocess.run([*command, "--figure", str(figure)], cwd=REPO, capture_output=True, text=True, check=True)
    run = json.loads(record.read_text())
    assert run["stop"] == "best" and run["reached"] == 1 and run["setup_seconds"] > 0
    assert run["test_acc"][0] == first_epoch["test_acc"] and run["lrs"][0] == first_epoch["lr"]  # resumed, not redone
    best = run["test_acc"].index(max(run["test_acc"]))
    assert run["trained"] == 3 or best < run["trained"] - 1  # stopped at the cap, or once past its best
    assert len(run["lrs"]) == run["trained"] and not work.exists() and figure.stat().st_size > 0
    row = _table_row(out.stdout, "prodigy")
    assert row[4:6] == ["1.0", "1"] and row[7] == "-"  # 99.9% not reached: "-", no mean
    assert f"| prodigy (0) | {', '.join(f'{rate:.3g}' for rate in run['lrs'])} |" in out.stdout
    # a line written before "stop" existed reads as stop="target"; a higher target it stopped short of is "?"
    old = {k: v for k, v in run.items() if k not in ("stop", "lrs", "setup_seconds")}
    record.write_text(json.dumps({**old, "test_acc": [0.5], "trained": 1}) + "\n")
    target_rule = [*command[: command.index("--stop")], "--target", "0.0", "--report", "0.0", "0.999"]
    table = subprocess.run(
        [*target_rule, "--record", str(record), "--methods", "prodigy", "--no-train"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _table_row(table, "prodigy")[4:8] == ["1.0", "1", "?", "?"]  # it cannot say: not "-"


def test_time_to_accuracy_refuses_a_broken_record(tmp_path):
    record = tmp_path / "runs.jsonl"
    record.write_text('{"method": "constant"\n')
    command = [sys.executable, "benchmarks/time_to_accuracy.py", "--record", str(record), "--no-train"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and f"{record}:1 is not a JSON line" in result.stderr


def test_statistics_subset_prints_each_subset_against_the_full_pass(data_dir):
    command = [sys.executable, "benchmarks/statistics_subset.py", "--data-dir", str(data_dir), "--train-subset", "512"]
    command += ["--seeds", "0", "--trained-seeds", "0", "--subsets", "1", "--device", "cpu"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| initial")]
    assert [row[2].strip() for row in rows] == ["2", "1"]  # 512 images: 2 batches of 256, then the first one
    assert rows[0][5].strip() == "1.000" and float(rows[1][5]) <= 1.0  # a subset's K_z never exceeds the full pass's
    # after an epoch of training through the Trainer, on the device the data was loaded on
    assert len([line for line in out.splitlines() if line.startswith("| after 1 epoch, seed 0 |")]) == 2


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


def test_the_gpu_check_runs_its_cpu_sections_in_smoke_mode(tmp_path, data_dir):
    """benchmarks/gpu_check.py is run on a GPU when one is lent; here its CPU sections keep it working."""
    command = [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--device", "cpu", "--data-dir", str(data_dir)]
    result = subprocess.run([*command, "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "gpu_check.md").read_text()
    for heading in ("Environment", "GPU tests", "K_z by precision", "Exact resume", "MNIST rows of Table 1"):
        assert f"## {heading}" in report
    assert "skipped: needs CUDA" in report and "FAILED" not in report
    assert "identical histories" in report and "| MNIST CNN, SGD, LipschitzLR | `mnist_sgd` | 99.50 |" in report
    assert (tmp_path / "mnist_histories.tar.gz").stat().st_size > 0


def test_batchnorm_modes_prints_the_table_the_readme_quotes():
    out = subprocess.run(
        [sys.executable, "benchmarks/batchnorm_modes.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in out.splitlines() if line.startswith("| ")}
    running_lr, batch_lr = float(rows["mobilenet_v3_small"][1]), float(rows["mobilenet_v3_small"][3])
    assert running_lr > 1e6 and 0.1 < batch_lr < 10  # the eval pass's absurd first rate; batch statistics' sane one


def test_defaults_that_train_records_runs_and_prints_the_file_as_a_table(tmp_path):
    """One net, two settings, then the same setting again: the table shows each (net, setting, seed) once, the
    rerun's numbers in place of the first run's."""
    out = tmp_path / "digits.jsonl"
    script = [sys.executable, "benchmarks/defaults_that_train.py"]
    run = lambda *a: subprocess.run([*script, *a], cwd=REPO, capture_output=True, text=True, check=True).stdout  # noqa: E731
    live = run("digits", "--nets", "small BN CNN", "--settings", "before", "defaults", "--out", str(out))
    rerun = run("digits", "--nets", "small BN CNN", "--settings", "defaults", "--seeds", "0", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["setting"] for row in rows] == ["before", "defaults", "defaults"]
    assert rows[1]["first_loss"] == rows[2]["first_loss"] and len(rows[2]["rates"]) == 4  # construction + 3 epochs
    table = run("table", "--out", str(out)).splitlines()
    assert table[0].startswith("| net | setting |") and len(table) == 4
    assert table[2:] == live.splitlines()[2:3] + rerun.splitlines()[2:]
    missing = subprocess.run([*script, "table"], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2 and "table needs --out FILE" in missing.stderr


def test_the_head_to_heads_figure_gives_each_method_its_own_colour_and_names_lipschitzlr_configurations(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as when the script runs: its folder on the path
    module = importlib.import_module("time_to_accuracy")
    styles = importlib.import_module("time_to_accuracy_report").method_styles(list(module.METHODS))
    colours = [tuple(round(c, 6) for c in colour) for _, colour in styles.values()]
    assert len(set(colours)) == len(module.METHODS)  # one colour per method
    assert all(not (r == g == b and r > 0) for r, g, b, _ in colours)  # no grey: the sweep's bars are grey
    assert styles["sgd + warm-up"][0] == "lipschitz (sgd + warm-up: the preset)"
    assert styles["constant"][0] == "constant (tuned)" and styles["dog"][0] == "dog"
