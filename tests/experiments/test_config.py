import pytest

from lipschitz_lr_experiments.config import CONFIG_DIR, ConfigError, bundled_configs, from_dict, load_config

MINIMAL = {"name": "x", "dataset": "mnist", "model": "mnist_cnn"}


def test_every_bundled_config_loads():
    names = bundled_configs()
    assert len(names) >= 50
    for name in names:
        config = load_config(name)
        assert config.name == name and config.description


def test_table1_rows_have_faithful_and_clean_variants():
    faithful = load_config("c10_resnet20_sgd")
    clean = load_config("c10_resnet20_sgd_clean")
    baseline = load_config("c10_resnet20_sgd_baseline")
    assert faithful.schedule_args["keras_decay"] and not clean.schedule_args["keras_decay"]
    assert faithful.schedule_args["weight_decay"] == 1e-3  # the paper's lambda
    assert (faithful.batch_size, faithful.epochs, faithful.kernel_l2) == (128, 300, 1e-4)
    assert baseline.schedule == "constant" and baseline.lr == 0.01 and baseline.schedule_args == {"decay": 1e-3}
    assert load_config("c100_resnet56v2_sgd").epochs == 500
    assert load_config("c10_densenet40_rmsprop_baseline").lr == 0.001


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({**MINIMAL, "learning_rate": 0.1}, "learning_rate"),
        ({**MINIMAL, "epochs": "ten"}, "epochs must be int"),
        ({**MINIMAL, "epochs": True}, "epochs must be int"),
        ({**MINIMAL, "schedule_args": {"keras_decay": 1}}, "requires True or False for keras_decay"),
        ({**MINIMAL, "model": "vgg"}, "model='vgg'"),
        ({**MINIMAL, "dataset": "svhn"}, "dataset='svhn'"),
        ({**MINIMAL, "schedule": "linear"}, "schedule='linear'"),
        ({**MINIMAL, "schedule": "step", "schedule_args": {"steps": 3}}, "steps"),
        ({**MINIMAL, "schedule_args": 3}, "schedule_args must be a table"),
        ({**MINIMAL, "epochs": 0}, "epochs=0"),
        ({**MINIMAL, "name": "../../escaped"}, r"one folder name .* got name='../../escaped'"),
        ({**MINIMAL, "name": ""}, "got name=''"),
        ({**MINIMAL, "name": "a/b"}, "got name='a/b'"),
        ({**MINIMAL, "seed": 99999999999999999999}, r"seed must be an integer in \[0, 2\*\*32 - 1\], got seed=9999"),
        ({**MINIMAL, "seed": -1}, "got seed=-1"),
        ({**MINIMAL, "lr": -1.0}, "lr=-1.0"),
        ({**MINIMAL, "lr": float("nan")}, "lr=nan"),
        ({**MINIMAL, "lr": float("inf")}, "lr=inf"),
        ({**MINIMAL, "lr": 0.0}, "lr must be > 0"),
        ({**MINIMAL, "schedule_args": {"weight_decay": float("nan")}}, "weight_decay=nan"),
        ({**MINIMAL, "schedule": "constant", "schedule_args": {"decay": -1.0}}, "decay=-1.0"),
        ({**MINIMAL, "schedule_args": {"initial_lr": float("inf")}}, "initial_lr=inf"),
        ({**MINIMAL, "train_subset": -100}, "train_subset=-100"),
        ({**MINIMAL, "train_subset": 0}, "train_subset=0"),
        ({**MINIMAL, "test_subset": 0}, "test_subset=0"),
        ({**MINIMAL, "schedule_args": {"statistics_batches": 0}}, "statistics_batches=0"),
        ({**MINIMAL, "schedule": "cosine", "schedule_args": {"keras_decay": True}}, "keras_decay"),
        ({"name": "x", "dataset": "mnist"}, "missing required config key(s): model"),
        ({**MINIMAL, "loss": "mse"}, "loss='mse' is not one of keras_cross_entropy, cross_entropy"),
        (
            {**MINIMAL, "schedule_args": {"momentum_seed": "inverse"}},
            "schedule_args: unknown momentum_seed 'inverse'; expected one of value, recipr",
        ),
        (
            {**MINIMAL, "statistics": "hook"},
            "LipschitzLR's options are schedule_args now .* schedule_args = {statistics = 'hook'}",
        ),
    ],
)
def test_bad_configs_name_the_offending_key(raw, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")):
        from_dict(raw)


def test_mnist_configs_are_the_authors_notebooks():
    """MNIST.ipynb: no epoch-0 seed; MNIST Momentum.ipynb: `K1 = 0.1; return 0.1`; every script: Keras' loss."""
    sgd, momentum, adam = (load_config(f"mnist_{v}") for v in ("sgd", "momentum", "adam"))
    sgd_args, momentum_args, adam_args = (c.schedule_options() for c in (sgd, momentum, adam))
    assert sgd_args["initial_lr"] is None and adam_args["initial_lr"] is None
    assert (momentum_args["initial_lr"], momentum_args["momentum_seed"]) == (0.1, "value")
    assert {c.loss for c in (sgd, momentum, adam)} == {"keras_cross_entropy"}
    assert all(load_config(name).loss == "keras_cross_entropy" for name in bundled_configs())


def test_the_no_tuning_preset_is_faithful_sgd_with_a_one_epoch_warm_up():
    preset, faithful = load_config("mnist_sgd_preset"), load_config("mnist_sgd")
    changed = {"schedule_args": {"warmup_epochs": 1}, "name": preset.name, "description": preset.description}
    assert preset == faithful.replace(**changed) and faithful.schedule_options()["warmup_epochs"] == 0


@pytest.mark.parametrize(
    ("name", "x"),
    [
        ("c10_resnet20_momentum", 1.0),  # CIFAR10/Momentum/ResNet/1e-3/cifar.py: K1 = 1.; return 1.
        ("c10_resnet20_momentum_clean", 1.0),
        ("c10_resnet20_momentum_wd1e-2", 0.1),  # CIFAR10/Momentum/ResNet/1e-2/cifar.py
        ("c10_densenet40_momentum", 0.5),  # CIFAR10/Momentum/DenseNet/cif.py
        ("c100_densenet40_momentum", 1.0),  # CIFAR100/Momentum/DenseNet/cif.py
        ("c100_resnet164v2_momentum", 0.5),  # CIFAR100/Momentum/ResNet164/Adaptive/cifar100_rn.py
    ],
)
def test_momentum_rows_seed_epoch_zero_as_the_authors_scripts(name, x):
    args = load_config(name).schedule_options()
    assert (args["initial_lr"], args["momentum_seed"]) == (x, "value")


def test_ints_are_accepted_for_floats_and_files_by_path(tmp_path):
    assert from_dict({**MINIMAL, "lr": 1}).lr == 1.0
    path = tmp_path / "mine.toml"
    path.write_text('dataset = "mnist"\nmodel = "mnist_cnn"\nepochs = 2\n')
    assert load_config(path).name == "mine"
    path.write_text("dataset = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no bundled config named 'nope'"):
        load_config("nope")


def test_lipschitz_needs_a_core_optimizer():
    with pytest.raises(ConfigError, match="optimizer='prodigy'"):
        from_dict({**MINIMAL, "optimizer": "prodigy", "schedule": "lipschitz"})


def test_clean_variants_are_derived_from_their_faithful_config_not_copied():
    assert not list(CONFIG_DIR.glob("*_clean.toml"))
    clean_names = [name for name in bundled_configs() if name.endswith("_clean")]
    assert len(clean_names) >= 17  # the 17 that were copies before, and any new faithful LipschitzLR config
    for name in clean_names:
        faithful, clean = load_config(name.removesuffix("_clean")), load_config(name)
        assert faithful.schedule_args["keras_decay"] and faithful.schedule == "lipschitz"
        differs = {k for k, v in clean.to_dict().items() if faithful.to_dict()[k] != v}
        assert differs == {"name", "schedule_args", "description"} and "clean" in clean.description
        assert clean.schedule_args == {**faithful.schedule_args, "keras_decay": False}
    with pytest.raises(ConfigError, match="'mnist_sgd' has no clean variant"):
        load_config("mnist_sgd_clean")


def test_renamed_keys_are_refused_naming_the_new_key():
    with pytest.raises(ConfigError, match="'l2' is now 'kernel_l2'"):
        from_dict({**MINIMAL, "l2": 1e-3})


@pytest.mark.parametrize(
    ("old", "table"),
    [
        (
            {"schedule": "lipschitz", "paper_lambda": 1e-3, "keras_decay": True},
            "weight_decay = 0.001, keras_decay = true",
        ),
        ({"schedule": "lipschitz", "weight_decay": 1e-4}, "weight_decay = 0.0001"),
        ({"schedule": "constant", "paper_lambda": 1e-3, "keras_decay": True}, "decay = 0.001"),
    ],
)
def test_the_papers_lambda_and_keras_decay_at_the_top_level_are_refused_naming_their_place(old, table):
    with pytest.raises(ConfigError, match=f"schedule_args = {{{table}}}"):
        from_dict({**MINIMAL, "optimizer": "sgd", **old})


def test_a_checkpoints_config_of_before_2026_12_reads_in_todays_layout():
    """A resume compares the saved config with the current one: the old top-level keys land where they live now."""
    from lipschitz_lr_experiments.config import upgraded

    old = {**MINIMAL, "schedule": "lipschitz", "paper_lambda": 1e-3, "keras_decay": True, "statistics": "hook"}
    assert upgraded(old)["schedule_args"] == {"statistics": "hook", "weight_decay": 1e-3, "keras_decay": True}
    assert not {"paper_lambda", "keras_decay", "statistics"} & set(upgraded(old))
    baseline = {**MINIMAL, "schedule": "constant", "paper_lambda": 1e-3, "keras_decay": True}
    assert upgraded(baseline)["schedule_args"] == {"decay": 1e-3}
    assert from_dict(upgraded(baseline)).schedule_args == {"decay": 1e-3}


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\ndataset = "mnist"\nmodel = "mnist_cnn"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{path}: not UTF-8 text"):
        load_config(path)
