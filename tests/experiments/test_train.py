import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lipschitz_lr_experiments.config import bundled_configs, load_config
from lipschitz_lr_experiments.history import HISTORY_FIELDS
from lipschitz_lr_experiments.run_dir import RunDirError, atomic_write_bytes
from lipschitz_lr_experiments.train import RunOptions, Trainer, run_experiment
from tests.conftest import TINY_MNIST, write_tiny_cifar, write_tiny_config, write_tiny_mnist_format
from tests.test_compile import recompile_limit

REPO = Path(__file__).resolve().parents[2]


def tiny_config(tmp_path, optimizer="momentum", schedule="lipschitz", epochs=3, train_subset=1024):
    path = tmp_path / f"tiny_{optimizer}_{schedule}.toml"
    return write_tiny_config(path, optimizer=optimizer, schedule=schedule, epochs=epochs, train_subset=train_subset)


def test_run_writes_history_checkpoint_summary(tmp_path, data_dir):
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=512))
    history = run_experiment(config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == set(HISTORY_FIELDS)
    assert history[0]["lr"] == 0.05 and history[1]["lr"] > 0 and history[1]["k"] > 0
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved == history
    csv_lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(HISTORY_FIELDS) and len(csv_lines) == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["device"].startswith("cpu")
    assert summary["precision"]["amp"] == "off" and summary["precision"]["device_type"] == "cpu"
    assert {"tf32_matmul", "tf32_cudnn", "deterministic_algorithms", "cudnn_benchmark"} <= set(summary["precision"])
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["adaptive"]["variant"] == "momentum"


@pytest.fixture
def restore_determinism():
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic)
    algorithms = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic = flags
    torch.use_deterministic_algorithms(algorithms[0], warn_only=algorithms[1])
    torch.backends.cudnn.benchmark = False


def test_a_deterministic_run_turns_tf32_off_and_says_so_in_its_summary(tmp_path, data_dir, restore_determinism):
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=256))
    options = RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False, deterministic=True)
    run_experiment(config, options)
    precision = json.loads((tmp_path / "run" / "summary.json").read_text())["precision"]
    assert precision["deterministic_algorithms"] and precision["cudnn_deterministic"]
    assert not precision["tf32_matmul"] and not precision["tf32_cudnn"] and not precision["cudnn_benchmark"]
    with pytest.raises(ValueError, match="deterministic and cudnn_benchmark exclude each other"):
        Trainer(config, RunOptions(out_dir=tmp_path / "b", deterministic=True, cudnn_benchmark=True))


def _cli(*args, data_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return [
        sys.executable,
        "-m",
        "lipschitz_lr_experiments",
        "run",
        *map(str, args),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "--no-progress",
    ], env


def test_resume_after_kill_reproduces_uninterrupted_history(tmp_path, data_dir):
    config = tiny_config(tmp_path, epochs=4)
    command, env = _cli(config, "--out", tmp_path / "full", data_dir=data_dir)
    subprocess.run(command, env=env, check=True, cwd=REPO, capture_output=True)
    full = json.loads((tmp_path / "full" / "history.json").read_text())

    command, env = _cli(config, "--out", tmp_path / "killed", data_dir=data_dir)
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history_file = tmp_path / "killed" / "history.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if history_file.exists() and len(json.loads(history_file.read_text())) >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "summary.json").exists()
    done_before = len(json.loads(history_file.read_text()))
    assert 1 <= done_before < 4

    command, env = _cli(config, "--out", tmp_path / "killed", "--resume", data_dir=data_dir)
    subprocess.run(command, env=env, check=True, cwd=REPO, capture_output=True)
    resumed = json.loads(history_file.read_text())

    def without_time(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert without_time(resumed) == without_time(full)


def test_resume_refuses_a_different_config(tmp_path, data_dir):
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=256))
    run_experiment(config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    changed = config.replace(seed=1, epochs=2)
    with pytest.raises(ValueError, match="config differs in seed"):
        run_experiment(changed, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False, resume=True))


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle", "plateau"])
def test_baseline_schedules_train(tmp_path, data_dir, schedule):
    config = load_config(tiny_config(tmp_path, optimizer="sgd", schedule=schedule, epochs=2, train_subset=256))
    history = run_experiment(config, RunOptions(out_dir=tmp_path / schedule, data_dir=data_dir, progress=False))
    assert len(history) == 2 and history[0]["k"] is None and history[0]["lr"] > 0


CIFAR_CONFIGS = [name for name in bundled_configs() if name.startswith(("c10_", "c100_"))]


@pytest.fixture(scope="module")
def smoke_cifar(tmp_path_factory):
    return write_tiny_cifar(tmp_path_factory.mktemp("smoke"), n_train=10, n_test=4)


@pytest.mark.parametrize("name", CIFAR_CONFIGS)
def test_cifar_config_smoke(tmp_path, smoke_cifar, name):
    """Every CIFAR config builds, trains an epoch and evaluates on a tiny archive in torchvision's format."""
    config = load_config(name).replace(epochs=1, batch_size=5)
    trainer = Trainer(config, RunOptions(out_dir=tmp_path, data_dir=smoke_cifar, progress=False, tensorboard=False))
    history = trainer.run()
    assert len(history) == 1 and history[0]["lr"] > 0
    assert trainer.model.head.out_features == (100 if config.dataset == "cifar100" else 10)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "file.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


@pytest.mark.parametrize("optimizer", ["dadapt_adam", "prodigy", "schedulefree_sgd"])
def test_learning_rate_free_baselines_train(tmp_path, data_dir, optimizer):
    path = write_tiny_config(
        tmp_path / "free.toml",
        optimizer=optimizer,
        schedule="constant",
        lr=1.0,
        epochs=2,
        train_subset=256,
        test_subset=200,
    )
    history = run_experiment(load_config(path), RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    assert len(history) == 2 and all(math.isfinite(row["train_loss"]) for row in history)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last(tmp_path, data_dir, amp):
    """Autocast (GradScaler for fp16) with channels_last; the statistics stay float64 and finite."""
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=128)).replace(test_subset=100)  # fp16: slow
    options = RunOptions(out_dir=tmp_path / amp, data_dir=data_dir, progress=False, amp=amp, channels_last=True)
    trainer = Trainer(config, options)
    history = trainer.run()
    assert all(math.isfinite(row["train_loss"]) and row["k"] > 0 for row in history[1:])
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    channels_last = torch.channels_last  # the resident data is converted once, and its shards keep the format
    assert trainer.data.train_images.is_contiguous(memory_format=channels_last)
    assert trainer.train_loader.images.is_contiguous(memory_format=channels_last)


def test_a_used_directory_is_refused_and_overwrite_replaces_the_run(tmp_path, data_dir):
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=256))
    out = tmp_path / "run"
    run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False))
    before = (out / "history.json").read_text()
    with pytest.raises(RunDirError, match="already holds a run"):
        run_experiment(config.replace(epochs=1), RunOptions(out_dir=out, data_dir=data_dir, progress=False))
    assert (out / "history.json").read_text() == before  # nothing lost
    run_experiment(config.replace(epochs=1), RunOptions(out_dir=out, data_dir=data_dir, progress=False, overwrite=True))
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_a_directory_locked_by_a_live_run_is_refused(tmp_path, data_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(str(os.getppid()))  # the process that started pytest: alive
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=256))
    with pytest.raises(RunDirError, match=f"another run \\(process {os.getppid()} on host "):
        run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False))
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_an_interrupted_run_releases_its_lock_and_resumes(tmp_path, data_dir):
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=256))
    out = tmp_path / "run"

    def interrupt(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, on_epoch_end=interrupt))
    assert not (out / ".lock").exists() and (out / "checkpoint.pt").exists()
    history = run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, resume=True))
    assert [row["epoch"] for row in history] == [1, 2]


def test_resume_refuses_a_history_without_its_checkpoint(tmp_path, data_dir):
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=256))
    out = tmp_path / "run"
    run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False))
    (out / "checkpoint.pt").unlink()
    with pytest.raises(RunDirError, match="no checkpoint.pt, so resuming would start over"):
        options = RunOptions(out_dir=out, data_dir=data_dir, progress=False, resume=True)
        run_experiment(config.replace(epochs=2), options)
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_on_epoch_end_can_end_a_run_which_then_finishes_cleanly(tmp_path, data_dir):
    """time_to_accuracy stops a run this way: the summary is written and the lock released."""
    config = load_config(tiny_config(tmp_path, epochs=3, train_subset=256))
    out = tmp_path / "run"
    seen = []

    def stop_after_two(epoch):
        seen.append(epoch)
        return epoch == 2

    history = run_experiment(
        config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, on_epoch_end=stop_after_two)
    )
    assert seen == [1, 2] and [row["epoch"] for row in history] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and not (out / ".lock").exists()


def test_an_exception_in_a_callback_still_releases_the_lock_and_closes_tensorboard(tmp_path, data_dir, monkeypatch):
    closed = []

    class Writer:
        def add_scalar(self, *args):
            pass

        def close(self):
            closed.append(True)

    monkeypatch.setattr("lipschitz_lr_experiments.train.open_tensorboard", lambda out_dir: Writer())
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=256))

    def fail(epoch):
        raise RuntimeError("callback failed")

    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="callback failed"):
        run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, on_epoch_end=fail))
    assert closed == [True] and not (out / ".lock").exists() and (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("statistics", ["reference", "hook"])
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_keeps_the_training_forward_compiled(tmp_path, data_dir, monkeypatch, statistics, backend):
    """--compile with LipschitzLR: the forward is compiled once per input shape and mode, not per batch
    (by default with aot_eager: inductor, the default backend, needs C++ compilation, a minute on a CPU)."""
    import torch._dynamo

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: compile_(model, backend=backend, dynamic=False))
    torch._dynamo.reset()
    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=300)).replace(
        schedule_args={**TINY_MNIST["schedule_args"], "statistics": statistics}
    )
    options = RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False, compile=True)
    trainer = Trainer(config, options)
    with recompile_limit(4):
        history = trainer.run()
        x = trainer.train_loader.images[:128]
        assert type(trainer.model(x).grad_fn).__name__ == "CompiledFunctionBackward"
    assert all(math.isfinite(row["train_loss"]) and row["lr"] > 0 for row in history)


@pytest.mark.parametrize("name", ["fashionmnist_sgd", "kmnist_sgd_baseline"])
def test_other_mnist_format_configs_train(tmp_path, name):
    """FashionMNIST and KMNIST (not on this machine) train with the MNIST CNN from torchvision's format."""
    config = load_config(name).replace(epochs=1, batch_size=16)
    folder = {"fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}[config.dataset]
    data_dir = write_tiny_mnist_format(tmp_path / "data", folder, n_train=40, n_test=20)
    history = run_experiment(config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    assert len(history) == 1 and history[0]["lr"] > 0 and math.isfinite(history[0]["train_loss"])


def test_a_refused_overwrite_deletes_nothing_of_a_live_run(tmp_path, data_dir):
    """A second process with --overwrite on a live run's --out is refused by the lock before it deletes anything
    (it used to delete the live run's checkpoint, history, config and tensorboard/ first)."""
    out = tmp_path / "live"
    out.mkdir()
    for name in ("checkpoint.pt", "history.json", "history.csv", "config.json"):
        (out / name).write_text("live")
    (out / "tensorboard").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lipschitz_lr_experiments.run_dir import RunDirectory\n"
            "with RunDirectory(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        config = load_config(tiny_config(tmp_path, epochs=1, train_subset=256))
        with pytest.raises(RunDirError, match=f"process {holder.pid} on host .* is writing to {out}"):
            Trainer(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, overwrite=True))
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock.guard") == sorted(
        [".lock", "checkpoint.pt", "config.json", "history.csv", "history.json", "tensorboard"]
    )
    assert all((out / name).read_text() == "live" for name in ("checkpoint.pt", "history.json"))


def test_the_trainer_never_asks_which_schedule_it_steps():
    """Every schedule is built by the registry and stepped through one interface (stepper.py): the trainer's
    source names no schedule and no scheduler class."""
    import ast

    import lipschitz_lr_experiments.train as train
    from lipschitz_lr_experiments.schedules import SCHEDULES

    source = Path(train.__file__).read_text()
    strings = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
    assert not strings & set(SCHEDULES), strings & set(SCHEDULES)
    assert "lr_scheduler" not in source and "is_schedule_free" not in source and ".interval" not in source
    # nor which optimiser: an OptimizerAdapter answers for each (optimizers.py)
    from lipschitz_lr_experiments.optimizers import OPTIMIZERS

    assert not strings & set(OPTIMIZERS) and "AdaptiveLR" not in source and "adaptive" not in source
    assert 'param_groups[0]["lr"]' not in source and "switch(" not in source
