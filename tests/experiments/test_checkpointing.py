"""Resumes that must not lose or contradict what a run wrote (``Trainer.load``, ``run_dir.check_layout``)."""

import json
import shutil

import pytest
import torch

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.run_dir import CHECKPOINT_KEYS, RunDirError
from lipschitz_lr_experiments.train import RunOptions, run_experiment
from tests.conftest import write_tiny_config


def _config(tmp_path, schedule="lipschitz", epochs=2, train_subset=256, test_subset=100):
    optimizer = "momentum" if schedule == "lipschitz" else "sgd"
    path = tmp_path / f"resume_{schedule}.toml"
    subsets = {"train_subset": train_subset, "test_subset": test_subset}
    return load_config(write_tiny_config(path, optimizer=optimizer, schedule=schedule, epochs=epochs, **subsets))


def _run(config, out, data_dir, **options):
    return run_experiment(
        config, RunOptions(out_dir=out, data_dir=data_dir, progress=False, tensorboard=False, **options)
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """A finished 2-epoch LipschitzLR run; each test works on its own copy."""
    root = tmp_path_factory.mktemp("finished")
    config = _config(root)
    _run(config, root / "run", data_dir)
    return config, root / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    config, source = finished
    shutil.copytree(source, tmp_path / "run")
    return config, tmp_path / "run"


def _files(run):
    return {name: (run / name).read_bytes() for name in ("config.json", "summary.json", "history.json")}


def test_a_resume_with_nothing_left_to_train_rewrites_missing_history_files(run_copy, data_dir):
    config, run = run_copy
    expected = json.loads((run / "history.json").read_text())
    (run / "history.json").unlink()  # a full disk after the checkpoint, say
    (run / "history.csv").unlink()
    _run(config, run, data_dir, resume=True)
    assert json.loads((run / "history.json").read_text()) == expected
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_a_resume_never_drops_finished_epochs(run_copy, data_dir):
    config, run = run_copy
    before = _files(run)
    with pytest.raises(RunDirError, match=r"with epochs=1: it has trained 2 epochs; pass --epochs 2 or more"):
        _run(config.replace(epochs=1), run, data_dir, resume=True)
    assert _files(run) == before  # config.json and summary.json not rewritten to disagree with the history


def test_a_resume_may_extend_a_schedule_that_does_not_depend_on_the_runs_length(run_copy, data_dir):
    config, run = run_copy
    history = _run(config.replace(epochs=3), run, data_dir, resume=True)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_resume_that_changes_the_length_of_a_fitted_schedule_is_refused(tmp_path, data_dir, schedule):
    """cosine resumed from 2 to 4 epochs trained at 0.01, 0.005, 0.0, 0.005; one-cycle failed mid-epoch."""
    config = _config(tmp_path, schedule=schedule)
    _run(config, tmp_path / "run", data_dir)
    before = _files(tmp_path / "run")
    with pytest.raises(RunDirError, match=f"schedule '{schedule}' was fitted to epochs=2 .* --epochs 2"):
        _run(config.replace(epochs=4), tmp_path / "run", data_dir, resume=True)
    assert _files(tmp_path / "run") == before


def _damage(run, change):
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    change(state)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("key", sorted(CHECKPOINT_KEYS))
def test_a_checkpoint_missing_any_entry_is_named(run_copy, data_dir, key):
    config, run = run_copy
    path = _damage(run, lambda state: state.pop(key))
    with pytest.raises(
        RunDirError, match=f"{path} is damaged or not a checkpoint of this project \\(it lacks {key}\\)"
    ):
        _run(config.replace(epochs=3), run, data_dir, resume=True)


@pytest.mark.parametrize(
    ("what", "change", "message"),
    [
        ("adaptive None", lambda s: s.update(adaptive=None), "the 'adaptive' entry of .* does not fit this run"),
        ("format", lambda s: s.update(format=99), "has checkpoint format 99; this version reads up to 1"),
        ("history", lambda s: s.update(history=s["history"][:1]), "from epoch 2 but holds 1 history rows"),
        ("config", lambda s: s.update(config=[]), r"damaged .* \(config is list\)"),
        (
            "renamed tensor",
            lambda s: s["model"].__setitem__("renamed.weight", s["model"].pop(next(iter(s["model"])))),
            "the 'model' entry of .* does not fit this run \\(RuntimeError: Error\\(s\\) in loading state_dict",
        ),
    ],
)
def test_damaged_or_foreign_checkpoint_entries_are_named(run_copy, data_dir, what, change, message):
    config, run = run_copy
    _damage(run, change)
    with pytest.raises(RunDirError, match=message):
        _run(config.replace(epochs=3), run, data_dir, resume=True)


def test_a_checkpoint_of_the_earlier_format_still_resumes(run_copy, data_dir):
    config, run = run_copy
    _damage(run, lambda state: state.pop("format"))
    assert len(_run(config.replace(epochs=3), run, data_dir, resume=True)) == 3


@pytest.mark.parametrize(("first", "then"), [("off", "fp16")])  # fp16 on a CPU is slow: the reported case only
def test_a_resume_may_change_amp(tmp_path, data_dir, first, then, caplog):
    """It failed with "source state dict is empty" (the scaler's state of a run without fp16)."""
    config = _config(tmp_path, epochs=1, train_subset=128, test_subset=20)  # fp16 on a CPU is slow: one step
    _run(config, tmp_path / "run", data_dir, amp=first)
    history = _run(config.replace(epochs=2), tmp_path / "run", data_dir, resume=True, amp=then)
    assert len(history) == 2 and f"with --amp {then}: the run's GradScaler state is" in caplog.text
