import json

from experiments.cli import main


def test_bad_config_fails_before_training_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('dataset = "mnist"\nmodel = "mnist_cnn"\nlearning_rate = 0.1\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "unknown config key(s) learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_set_override_with_wrong_type_is_named(tmp_path, capsys):
    assert main(["run", "mnist_sgd", "--set", "epochs=many", "--out", str(tmp_path)]) == 2
    assert "epochs must be int, got str 'many'" in capsys.readouterr().err


def test_missing_data_names_the_expected_path(tmp_path, capsys):
    assert main(["run", "c10_resnet20_sgd", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and str(tmp_path) in err


def test_list_shows_bundled_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "c10_resnet20_sgd " in out and "mnist_momentum " in out


def test_sweep_writes_a_ranked_table(tmp_path, data_dir, capsys):
    config = tmp_path / "base.toml"
    config.write_text(
        'dataset = "mnist"\nmodel = "mnist_cnn"\nschedule = "constant"\nepochs = 1\ntrain_subset = 256\n'
        "test_subset = 200\nbatch_size = 128\n"
    )
    args = ["sweep", str(config), "--lr", "0.1", "0.01", "--out", str(tmp_path / "sweep"), "--no-progress"]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert sorted(r["lr"] for r in rows) == [0.01, 0.1]
    assert rows[0]["best_test_acc"] >= rows[1]["best_test_acc"]
    assert (tmp_path / "sweep" / "lr0.1" / "history.json").exists()
