"""The Lightning recipe of docs/integrations.md, real Trainer: logged rates, checkpoint resume, step interval."""

import csv

import lightning as L
import pytest
import torch

from tests.integrations.conftest import run_snippet


@pytest.fixture
def lightning_recipe(plain_loop):
    return run_snippet("Lightning", plain_loop)


def fit(ns, model, tmp_path, epochs, ckpt_path=None, logging_interval="epoch"):
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[
            L.pytorch.callbacks.LearningRateMonitor(logging_interval=logging_interval),
            L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0),
        ],
        logger=L.pytorch.loggers.CSVLogger(tmp_path / "logs", name="run", version=f"v{ckpt_path is not None}"),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        log_every_n_steps=1,
    )
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer


def logged(trainer, key="lr-SGD"):
    with open(trainer.logger.experiment.metrics_file_path) as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def scheduler_of(trainer):
    return trainer.lr_scheduler_configs[0].scheduler


def test_learning_rate_monitor_logs_the_written_rates(lightning_recipe):
    trainer = lightning_recipe["trainer"]
    history = scheduler_of(trainer).history
    assert [r.epoch for r in history] == [0, 1, 2, 3]
    assert logged(trainer) == pytest.approx([r.lr for r in history[:3]], rel=1e-6)


@pytest.mark.parametrize("statistics", ["reference", "hook"])
def test_resume_from_a_checkpoint_continues_the_history_exactly(lightning_recipe, tmp_path, statistics):
    lit = lightning_recipe["LitClassifier"]
    torch.manual_seed(1)
    whole = fit(lightning_recipe, lit(statistics), tmp_path / "whole", epochs=3)
    torch.manual_seed(1)
    fit(lightning_recipe, lit(statistics), tmp_path / "part", epochs=2)
    resumed = fit(lightning_recipe, lit(statistics), tmp_path / "part", 3, ckpt_path=tmp_path / "part/ckpt/last.ckpt")
    saved, continued = scheduler_of(whole).history, scheduler_of(resumed).history
    assert [r.epoch for r in continued] == [0, 1, 2, 3]
    assert continued[:3] == saved[:3]  # restored from the checkpoint, not recomputed
    assert logged(resumed) == pytest.approx([continued[2].lr], rel=1e-6)  # the resumed epoch trains at the saved rate


def test_step_interval_recomputes_every_n_optimizer_steps(lightning_recipe, tmp_path):
    lit = lightning_recipe["LitClassifier"]
    trainer = fit(lightning_recipe, lit("hook", interval="step", frequency=4), tmp_path, 2, logging_interval="step")
    history = scheduler_of(trainer).history
    assert len(history) == 1 + 2 * 8 // 4  # 8 optimizer steps per epoch
    assert len(set(logged(trainer))) > 1 and all(r.lr > 0 for r in history)
