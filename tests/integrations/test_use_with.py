"""Every snippet of docs/integrations.md runs, and does what the text says."""

import os
import re
import subprocess
import sys

import torch
import torch._dynamo

from tests.integrations.conftest import SNIPPETS, run_snippet
from tests.test_compile import recompile_limit


def test_the_section_has_every_setting():
    assert list(SNIPPETS) == [
        "A plain loop",
        "Lightning",
        "ignite",
        "torchrun",
        "torch.compile",
        "A learning-rate finder",
        "A learning rate every N optimizer steps",
        "torchvision and timm",
        "Hugging Face",
    ]


def test_torchvision_with_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = run_snippet("torchvision and timm", {"__name__": "readme"})
    scheduler, model = namespace["scheduler"], namespace["model"]
    assert scheduler._head is model.classifier[3] and (scheduler.warmup_epochs, scheduler.resolved.warmup_steps) == (
        1,
        4,
    )
    assert len(scheduler.history) == 3 and all(1e-6 <= r.lr <= 1e3 for r in scheduler.history)


def test_hugging_face_batches_as_they_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = run_snippet("Hugging Face", {"__name__": "readme"})
    scheduler, model = namespace["scheduler"], namespace["model"]
    assert scheduler._head is model.classifier and scheduler.history[0].k_z > 0
    assert len(scheduler.history) == 3 and all(1e-6 <= r.lr <= 1e3 for r in scheduler.history)


def test_plain_loop(plain_loop):
    scheduler, optimizer = plain_loop["scheduler"], plain_loop["optimizer"]
    assert [r.epoch for r in scheduler.history] == [0, 1, 2, 3]
    assert optimizer.param_groups[0]["lr"] == scheduler.history[-1].lr > 0


def test_ignite_writes_each_epochs_rate_before_it_starts(plain_loop):
    """The rate at every EPOCH_STARTED is the one the scheduler computed for that epoch (no lag)."""
    from ignite.engine import Engine, Events

    started = []
    original = Engine.run

    def run_and_watch(engine, *args, **kwargs):
        optimizer = plain_loop["optimizer"]
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: started.append(optimizer.param_groups[0]["lr"]))
        return original(engine, *args, **kwargs)

    Engine.run = run_and_watch
    try:
        run_snippet("ignite", plain_loop)
    finally:
        Engine.run = original
    history = plain_loop["scheduler"].history
    assert [r.epoch for r in history] == [0, 1, 2, 3]
    assert started == [r.lr for r in history[:3]]


def test_torchrun_ranks_write_the_same_rates(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SNIPPETS["torchrun"])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on the CPU, GPU or not
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rates = dict(re.findall(r"rank (\d) learning rates (\[[^]]*\])", result.stdout))  # lines may interleave
    assert set(rates) == {"0", "1"} and rates["0"] == rates["1"], result.stdout + result.stderr[-2000:]
    assert len(eval(rates["0"])) == 3 and all(lr > 0 for lr in eval(rates["0"]))


def test_torch_compile_without_recompiling(plain_loop, monkeypatch):
    """aot_eager stands in for inductor (minutes of C++ compilation on a CPU); the guards are the same."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: compile_(model, backend="aot_eager", dynamic=False))
    torch._dynamo.reset()
    with recompile_limit(4):
        run_snippet("torch.compile", plain_loop)
        x, _ = next(iter(plain_loop["train_loader"]))
        assert type(plain_loop["compiled"](x).grad_fn).__name__ == "CompiledFunctionBackward"
    assert len(plain_loop["scheduler"].history) == 3


def test_lr_finder_passes_are_not_counted(plain_loop):
    run_snippet("A learning-rate finder", plain_loop)
    assert len(plain_loop["finder"].history["lr"]) == 20  # the finder ran its 20 steps on this model
    hook = plain_loop["scheduler"]._hook
    assert hook.accumulator.num_batches == 0 and hook.pending.num_batches == 0


def test_every_n_steps_gives_one_record_per_period(plain_loop):
    run_snippet("A learning rate every N optimizer steps", plain_loop)
    history = plain_loop["scheduler"].history
    assert len(history) == 1 + 2 * 8 // 4  # epoch 0, then one per 4 of the 16 optimizer steps
    assert all(r.lr > 0 for r in history)
