"""``lipschitz-lr reproduce``: the paper's Table 1 as a matrix of runs (rows x seeds), from one device to a cluster.

Every cell is one run of a bundled config with a seed, in its own directory ``ROOT/<config>/seed<k>``.
The matrix is idempotent: a cell whose run finished is skipped, a cell with a checkpoint is resumed
(exactly: :mod:`lipschitz_lr_experiments.run_dir`), the rest start. So rerunning the same command after
a crash, a preemption or a Ctrl-C continues where the matrix stopped, and adding seeds adds only them.

Executors:

* ``local`` (default): a queue over ``--devices`` (every visible GPU, else the CPU), one run per device
  at a time, each a ``lipschitz-lr run ... --resume`` process (log in ``ROOT/logs/``).
* ``slurm``: one submitit job per cell, asking what ``--slurm-*`` say (:mod:`lipschitz_lr_experiments.slurm`:
  GPUs, CPUs, memory, partition, account, QOS, time limit, the signal's delay, extra ``sbatch`` lines), its
  id recorded in the cell's directory so that a rerun submits only cells with no live job. A job stopped by
  SIGTERM or SIGUSR1 (preemption, ``scancel --signal``) stops at once, its last epoch's checkpoint on disk, and
  requeues itself; a job reaching its time limit gets submitit's signal (USR2, the signal delay before the
  end), which requeues it through :meth:`RunJob.checkpoint`. A requeued job resumes exactly, and the waiting
  command follows it (by its id, through ``squeue``) to its end.
* ``submitit-local``: the same jobs through submitit's local executor (no cluster; the tests use it).

At the end, Table 1 over the seeds (mean ± sample std beside the paper's numbers) and the figures are
written by ``python -m lipschitz_lr_paper_figures --runs ROOT --out ROOT/figures``.

``--dry-run`` prints the plan: each cell's state and its estimated GPU time, from the model's forward
FLOPs (counted with ``torch.utils.flop_counter`` on one image) times three for a training step, plus
the test pass and, for LipschitzLR's reference mode, the statistics pass, at an assumed sustained
throughput (``--tflops``, default :data:`DEFAULT_TFLOPS`; the small CIFAR networks at batch 128 use a
small part of a GPU's peak). It is an estimate: calibrate ``--tflops`` with the GPU check's
throughput table.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, ExperimentConfig, from_dict, load_config
from .data import DATASETS
from .history import best_epoch
from .models import build_model
from .paper import PAPER_TABLE1
from .preemption import Preempted, preemption_signals, requeue_slurm_job
from .train import RunOptions, run_experiment

__all__ = ["DEFAULT_TFLOPS", "Cell", "RunJob", "cell_state", "estimate_hours", "expand", "select_rows"]

#: The sustained throughput (TFLOP/s) the GPU-hour estimate assumes for these small networks.
DEFAULT_TFLOPS = 5.0
EXECUTORS = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: ``row`` as given (a config name or path), its ``config`` with the seed and the
    overrides applied, and its directory ``out``."""

    row: str
    seed: int
    config: ExperimentConfig = field(compare=False)
    out: Path = field(compare=False)

    @property
    def label(self) -> str:
        return f"{self.config.name} seed {self.seed}"


def select_rows(
    rows: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
) -> list[str]:
    """The rows to run: ``rows`` as given (config names or TOML paths), else Table 1's rows whose config matches
    every filter given (dataset, model, optimizer)."""
    if rows:
        for row in rows:
            load_config(row)  # a bad name is refused here, naming it
        return list(rows)
    filters = {"dataset": datasets, "model": models, "optimizer": optimizers}
    selected = []
    for paper_row in PAPER_TABLE1:
        config = load_config(paper_row.config)
        if all(not wanted or getattr(config, key) in wanted for key, wanted in filters.items()):
            selected.append(paper_row.config)
    if not selected:
        given = ", ".join(f"{key} in {wanted}" for key, wanted in filters.items() if wanted)
        raise ConfigError(f"no row of Table 1 has {given}; `lipschitz-lr list` shows the configs")
    return selected


def expand(
    rows: Sequence[str], seeds: Sequence[int], root: Path, configure: Callable[[ExperimentConfig], ExperimentConfig]
) -> list[Cell]:
    """Rows x seeds; ``configure`` applies the command line's overrides (``--epochs``, ``--set``) to each config."""
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds lists a seed twice: {list(seeds)}")
    cells = []
    for row in rows:
        base = configure(load_config(row))
        for seed in seeds:
            config = base.replace(seed=seed)
            cells.append(Cell(row, seed, config, root / config.name / f"seed{seed}"))
    names = [cell.config.name for cell in cells[:: len(seeds)]]
    if len(set(names)) != len(names):
        raise ConfigError(f"two rows share a config name ({names}); each row needs its own directory")
    return cells


def cell_state(cell: Cell) -> tuple[str, int]:
    """``("done" | "partial" | "todo", epochs finished)`` from what the cell's directory holds."""
    try:
        epochs = len(json.loads((cell.out / "history.json").read_text()))
    except (OSError, ValueError, TypeError):
        epochs = 0
    try:
        summary = json.loads((cell.out / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("epochs") == cell.config.epochs == epochs:
        return "done", epochs
    if (cell.out / "checkpoint.pt").exists():
        return "partial", epochs
    return "todo", 0


@functools.cache
def forward_flops(model: str, num_classes: int, image_shape: tuple[int, int, int]) -> float:
    """FLOPs of one image's forward pass (counted on the CPU, once per model)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = build_model(model, num_classes).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *image_shape))
    return float(counter.get_total_flops())


def estimate_hours(config: ExperimentConfig, epochs: int, tflops: float = DEFAULT_TFLOPS) -> float:
    """Estimated GPU hours of ``epochs`` epochs of ``config`` (see the module docstring for the assumptions)."""
    spec = DATASETS.lookup(config.dataset)
    n_train, n_test = spec.sizes
    n_train = min(n_train, config.train_subset or n_train)
    n_test = min(n_test, config.test_subset or n_test)
    flops = forward_flops(config.model, spec.num_classes, spec.image_shape)
    images = 3 * n_train + n_test + (n_train if config.schedule_options().get("statistics") == "reference" else 0)
    return epochs * flops * images / (tflops * 1e12) / 3600


def plan_lines(cells: Sequence[Cell], tflops: float) -> tuple[list[str], float]:
    """The plan as markdown lines, and the GPU hours it still needs."""
    lines = ["| config | seed | state | epochs | est. GPU-h left |", "|---|---|---|---|---|"]
    left = 0.0
    states = []
    for cell in cells:
        state, done = cell_state(cell)
        states.append(state)
        hours = 0.0 if state == "done" else estimate_hours(cell.config, cell.config.epochs - done, tflops)
        left += hours
        lines.append(f"| {cell.config.name} | {cell.seed} | {state} | {done}/{cell.config.epochs} | {hours:.2f} |")
    lines.append(
        f"\n{len(cells)} runs: {states.count('done')} done, {states.count('partial')} to resume, "
        f"{states.count('todo')} to start; about {left:.1f} GPU-hours left at {tflops:g} TFLOP/s sustained "
        "(an estimate from counted FLOPs; calibrate --tflops with the GPU check's throughput)"
    )
    return lines, left


# ------------------------------------------------------------------------------------------------ running
@dataclass
class RunJob:
    """One cell as a picklable job (submitit): trains it in this process with ``--resume``.

    Returns ``"done"`` or ``"preempted"``; on SIGTERM/SIGUSR1 the run stops at once (its last epoch's
    checkpoint is on disk) and, in a SLURM job, requeues it. :meth:`checkpoint` is submitit's hook for its
    own timeout signal: the same job again, which resumes.
    """

    config: dict[str, Any]
    out: str
    options: dict[str, Any]

    def __call__(self) -> str:
        config = from_dict(self.config)
        options = RunOptions(out_dir=Path(self.out), resume=True, progress=False, **self.options)
        try:
            with preemption_signals():
                run_experiment(config, options)
        except Preempted:
            requeue_slurm_job()
            return "preempted"
        return "done"

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(self.config, self.out, self.options))


def _outcome(cell: Cell, status: str) -> str:
    if status != "done":
        return status
    try:
        best = best_epoch(json.loads((cell.out / "history.json").read_text()))
    except (OSError, ValueError):
        best = None
    return f"done, best test accuracy {100 * best['test_acc']:.2f}%" if best else "done, no finite accuracy"


class Progress:
    """Prints one line per finished cell: how far the matrix is."""

    def __init__(self, total: int, already: int) -> None:
        self.total, self.finished, self.lock = total, already, threading.Lock()

    def report(self, cell: Cell, status: str, where: str = "") -> None:
        with self.lock:
            self.finished += status == "done"
            print(f"[{self.finished}/{self.total}] {cell.label}{where}: {_outcome(cell, status)}", flush=True)


def default_devices() -> list[str]:
    """Every visible GPU (``cuda:i``), else the CPU (``$LIPSCHITZ_LR_DEVICE=cpu`` forces the CPU)."""
    if os.environ.get("LIPSCHITZ_LR_DEVICE", "").strip() != "cpu" and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


def run_local(
    cells: Sequence[Cell], devices: Sequence[str], run_args: list[str], root: Path, progress: Progress
) -> dict:
    """A queue over ``devices``: each device runs one cell at a time, as a ``lipschitz-lr run --resume`` process."""
    todo: queue.Queue[Cell] = queue.Queue()
    for cell in cells:
        todo.put(cell)
    results: dict[Cell, str] = {}
    running: dict[str, subprocess.Popen] = {}
    (root / "logs").mkdir(parents=True, exist_ok=True)

    def worker(device: str) -> None:
        env = dict(os.environ)
        if device.startswith("cuda"):
            env["CUDA_VISIBLE_DEVICES"] = device.partition(":")[2] or "0"
        while True:
            try:
                cell = todo.get_nowait()
            except queue.Empty:
                return
            command = [sys.executable, "-m", "lipschitz_lr_experiments", "run", cell.row, "--seed", str(cell.seed)]
            command += ["--out", str(cell.out), "--resume", "--no-progress", "--device", device.partition(":")[0]]
            log = root / "logs" / f"{cell.config.name}_seed{cell.seed}.log"
            with open(log, "a") as stream:
                process = subprocess.Popen(command + run_args, env=env, stdout=stream, stderr=subprocess.STDOUT)
                running[device] = process
                code = process.wait()
            status = "done" if code == 0 else ("preempted" if code > 128 else f"failed (exit {code}, see {log})")
            results[cell] = status
            progress.report(cell, status, f" on {device}")

    threads = [threading.Thread(target=worker, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        for process in running.values():
            if process.poll() is None:
                process.terminate()  # SIGTERM: each run stops, its last epoch saved
        for process in running.values():
            process.wait()
        raise
    return results


def make_executor(kind: str, folder: Path, parameters: dict[str, Any]) -> Any:
    """A submitit executor: ``slurm`` with ``parameters``
    (:meth:`~lipschitz_lr_experiments.slurm.JobRequest.parameters`), or ``submitit-local``."""
    try:
        import submitit
    except ImportError as error:
        raise ConfigError(
            f"--executor {kind} needs submitit; install it (pip install 'lipschitz-lr[cluster]')"
        ) from error
    if kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=parameters.get("timeout_min") or 60 * 24)
        return executor
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    executor.update_parameters(name="lipschitz-lr", **parameters)
    return executor


def submit(executor: Any, cell: Cell, options: dict[str, Any], run_args: list[str]) -> Any:
    """Submit one cell (its summary's command is the ``lipschitz-lr run`` that reruns it); an ``sbatch`` refusal is
    a :class:`ConfigError` of one line."""
    command = f"lipschitz-lr run {cell.row} --seed {cell.seed} --out {cell.out} --resume " + " ".join(run_args)
    job = RunJob(cell.config.to_dict(), str(cell.out), {**options, "command": command.strip()})
    try:
        return executor.submit(job)
    except Exception as error:  # submitit's FailedJobError carries sbatch's own message
        if type(error).__name__ != "FailedJobError":
            raise
        lines = [line.strip() for line in str(error).splitlines() if "error" in line.lower()]
        raise ConfigError(f"sbatch refused the job for {cell.label}: {(lines or [str(error)])[-1]}") from None


def run_slurm(
    cells: Sequence[Cell],
    executor: Any,
    options: dict[str, Any],
    run_args: list[str],
    progress: Progress,
    wait: bool,
) -> dict[Cell, str]:
    """One job per cell that has no live job (its recorded one still queued, running or requeued is followed, not
    submitted again); waits for every cell to end unless ``wait`` is False. Every cell's state is printed."""
    from .slurm import LiveJob, accounting_note, describe, live_jobs, record_job, watch

    live = live_jobs([cell.out for cell in cells])
    jobs: dict[Cell, LiveJob] = {}
    for cell in cells:
        if cell.out in live:
            jobs[cell] = live[cell.out]
            print(f"{cell.label}: {describe(live[cell.out])}, not submitted again", flush=True)
    for cell in cells:
        if cell not in jobs:
            job = submit(executor, cell, options, run_args)
            folder = Path(executor.folder)
            record_job(cell.out, str(job.job_id), folder)
            jobs[cell] = LiveJob(str(job.job_id), folder, "PENDING", "")
            print(f"submitted {cell.label}: job {job.job_id}", flush=True)
    if not wait:
        return {cell: "submitted" for cell in cells}
    note = accounting_note()
    if note:
        print(note, flush=True)
    return watch(cells, jobs, lambda cell: cell_state(cell)[0] == "done", progress.report)


def run_submitit(
    cells: Sequence[Cell], executor: Any, options: dict[str, Any], run_args: list[str], progress: Progress, wait: bool
) -> dict[Cell, str]:
    """submitit's local executor: one job per cell; waits for them (printing each as it ends) unless ``wait`` is
    False."""
    jobs = {cell: submit(executor, cell, options, run_args) for cell in cells}
    for cell, job in jobs.items():
        print(f"submitted {cell.label}: job {job.job_id}", flush=True)
    if not wait:
        return {cell: "submitted" for cell in cells}
    results: dict[Cell, str] = {}
    while len(results) < len(jobs):
        for cell, job in jobs.items():
            if cell not in results and job.done():
                try:
                    status = job.result()
                except Exception as error:  # the job's own traceback is in its submitit log
                    status = f"failed ({type(error).__name__}: {str(error).strip().splitlines()[-1][:200]})"
                results[cell] = status
                progress.report(cell, status, f" (job {job.job_id})")
        time.sleep(0.5)
    return results


def write_tables(root: Path) -> Path | None:
    """Table 1 over the seeds and the figures, by the figures' own command (a process: the harness does not
    import the figures package, which imports it). Returns the table's path, or None if it failed."""
    command = [sys.executable, "-m", "lipschitz_lr_paper_figures", "--runs", str(root), "--out", str(root / "figures")]
    result = subprocess.run([*command, "--formats", "png"], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"figures failed (exit {result.returncode}): {result.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return root / "figures" / "table1.md"
