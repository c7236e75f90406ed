import json

import pytest

from lipschitz_lr_experiments.cli import main
from lipschitz_lr_experiments.config import load_config
from tests.conftest import write_tiny_config


def test_bad_config_fails_before_training_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('dataset = "mnist"\nmodel = "mnist_cnn"\nlearning_rate = 0.1\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "unknown config key(s) learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_set_override_with_wrong_type_is_named(tmp_path, capsys):
    assert main(["run", "mnist_sgd", "--set", "epochs=many", "--out", str(tmp_path)]) == 2
    assert "epochs must be int, got str 'many'" in capsys.readouterr().err


def test_set_reaches_one_schedule_argument_and_an_old_key_names_its_new_place(tmp_path, capsys):
    from lipschitz_lr_experiments.cli import _apply_overrides, build_parser

    args = build_parser().parse_args(["run", "mnist_momentum", "--set", "schedule_args.statistics=hook"])
    config = _apply_overrides(load_config("mnist_momentum"), args)
    assert config.schedule_args == {"initial_lr": 0.1, "momentum_seed": "value", "statistics": "hook"}
    assert main(["run", "mnist_momentum", "--set", "statistics=hook", "--out", str(tmp_path)]) == 2
    assert "schedule_args = {statistics = 'hook'}" in capsys.readouterr().err


def test_missing_data_names_the_expected_path(tmp_path, capsys):
    out = ["--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--no-download"]
    assert main(["run", "c10_resnet20_sgd", *out]) == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and str(tmp_path) in err and "downloads are off" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_an_empty_out_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "mnist_sgd", "--out", ""])
    assert exit_.value.code == 2 and "--out: needs a folder to write into, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_and_argument_errors_answer_without_importing_torch():
    """``lipschitz-lr run --help`` once imported torch before parsing (2.3 s of CPU for a help text)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from lipschitz_lr_experiments.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "usage: lipschitz-lr run" in out and out.strip().endswith("False")


def test_list_shows_bundled_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "c10_resnet20_sgd " in out and "mnist_momentum " in out


def test_sweep_writes_a_ranked_table(tmp_path, data_dir, capsys):
    config = write_tiny_config(
        tmp_path / "base.toml",
        optimizer=None,
        schedule="constant",
        epochs=1,
        train_subset=256,
        test_subset=200,
    )
    args = ["sweep", str(config), "--lr", "0.1", "0.01", "--out", str(tmp_path / "sweep"), "--no-progress"]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert sorted(r["lr"] for r in rows) == [0.01, 0.1]
    assert rows[0]["best_test_acc"] >= rows[1]["best_test_acc"]
    assert (tmp_path / "sweep" / "lr0.1" / "history.json").exists()


def test_ctrl_c_ends_with_one_line_saying_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(config, options):
        raise KeyboardInterrupt

    monkeypatch.setattr("lipschitz_lr_experiments.train.run_experiment", interrupted)
    out = tmp_path / "o"
    assert main(["run", "mnist_sgd", "--out", str(out), "--epochs", "3", "--overwrite"]) == 130
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err == (
        f"lipschitz-lr: interrupted; every finished epoch is saved in {out}/: continue with "
        f"`lipschitz-lr run mnist_sgd --out {out} --epochs 3 --resume`"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["0.1", "-0.1"], "--lr values must be finite and positive, got [-0.1]"),
        (["nan"], "--lr values must be finite and positive, got [nan]"),
        (["inf", "0.1"], "got [inf]"),
        (["0.1", "0.1"], "--lr lists a value twice ([0.1, 0.1])"),
    ],
)
def test_sweep_rejects_bad_or_repeated_rates_before_training(tmp_path, capsys, values, message):
    assert main(["sweep", "mnist_sgd_baseline", "--lr", *values, "--out", str(tmp_path / "s")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_run_into_a_used_or_impossible_directory_is_refused(tmp_path, data_dir, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "history.json").write_text("[]")
    (tmp_path / "file").write_text("x")
    common = ["--epochs", "1", "--set", "train_subset=256", "--data-dir", str(data_dir), "--no-progress"]
    assert main(["run", "mnist_sgd", "--out", str(used), *common]) == 2
    assert "already holds a run (history.json); pass --resume" in capsys.readouterr().err
    assert main(["run", "mnist_sgd", "--out", str(tmp_path / "file"), *common]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
