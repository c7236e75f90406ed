"""``lipschitz-lr run`` in a terminal: the progress bar is drawn only there, so these runs give the command a
pseudo-terminal (tests otherwise run without one, where tqdm turns itself off). One bundled config of every
optimiser of the registry trains a tiny epoch; the bar shows a learning rate only where the optimiser has one
(COCOB bets per coordinate: ``param_groups[0]["lr"]`` once ended its run with ``KeyError: 'lr'``)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from concurrent.futures import ThreadPoolExecutor

import pytest

from lipschitz_lr_experiments.config import bundled_configs, load_config
from lipschitz_lr_experiments.optimizers import OPTIMIZERS, no_rate
from tests.conftest import REPO

TINY = ["--set", "train_subset=96", "--set", "test_subset=64", "--set", "batch_size=16", "--epochs", "1"]


def one_config_per_optimizer() -> dict[str, str]:
    """The first bundled MNIST config of each optimiser; for one with none (RMSprop, CIFAR's only) a CIFAR one,
    moved onto MNIST's CNN by the caller."""
    chosen: dict[str, str] = {}
    for name in sorted(bundled_configs(), key=lambda name: (not name.startswith("mnist"), name)):
        chosen.setdefault(load_config(name).optimizer, name)
    assert set(chosen) == set(OPTIMIZERS), "a bundled config for every optimiser"
    return chosen


def run_in_a_terminal(arguments: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run ``python -m lipschitz_lr_experiments ARGS`` with a pseudo-terminal as its stdin, stdout and stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # 40 x 200, as a window is
    process = subprocess.Popen(
        [sys.executable, "-m", "lipschitz_lr_experiments", *arguments],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def test_every_optimizer_trains_a_tiny_epoch_in_a_terminal(tmp_path, data_dir):
    env = {**os.environ, "TERM": "xterm", "OMP_NUM_THREADS": "1"}  # two runs at a time, one core each
    jobs = {}
    for optimizer, config in one_config_per_optimizer().items():
        arguments = ["run", config, "--out", str(tmp_path / optimizer), "--data-dir", str(data_dir), *TINY]
        if not config.startswith("mnist"):
            arguments += ["--set", "dataset=mnist", "--set", "model=mnist_cnn"]
        jobs[optimizer] = arguments
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(jobs, pool.map(lambda args: run_in_a_terminal(args, env), jobs.values()), strict=True))
    for optimizer, (code, screen) in results.items():
        assert code == 0, f"{optimizer}: exit {code}\n{screen[-3000:]}"
        bars = re.findall(r"\|\s*\d+/\d+ \[[^\]]*\]", screen)
        assert bars, f"{optimizer}: no progress bar drawn\n{screen[-2000:]}"
        postfix = re.findall(r"loss=[\d.]+, acc=[\d.]+(, lr=[^,\]\s]+)?", screen)
        assert postfix, f"{optimizer}: no loss/accuracy on the bar\n{screen[-2000:]}"
        shows_rate = any(rate for rate in postfix)
        assert shows_rate == (OPTIMIZERS[optimizer].rate is not no_rate), (optimizer, screen[-2000:])
        assert "best test accuracy" in screen, optimizer


@pytest.mark.parametrize("tty", [True, False])
def test_a_run_outside_a_terminal_draws_no_bar(tmp_path, data_dir, tty):
    arguments = ["run", "mnist_sgd", "--out", str(tmp_path / "run"), "--data-dir", str(data_dir), *TINY]
    if tty:
        arguments.append("--no-progress")
        code, screen = run_in_a_terminal(arguments, dict(os.environ))
    else:
        process = subprocess.run(
            [sys.executable, "-m", "lipschitz_lr_experiments", *arguments], cwd=REPO, capture_output=True, text=True
        )
        code, screen = process.returncode, process.stdout + process.stderr
    assert code == 0 and "best test accuracy" in screen
    assert not re.search(r"\d+/\d+ \[", screen)
