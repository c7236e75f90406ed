import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Every test runs on the CPU, also on a GPU machine (``--device auto`` reads this, and subprocesses inherit it);
# the tests that need a GPU say so (``@pytest.mark.gpu``, tests/test_gpu.py) and skip without one.
os.environ["LIPSCHITZ_LR_DEVICE"] = "cpu"
# Under pytest-xdist (``make test``) the workers share the cores: one thread each, their subprocesses too (two
# workers of two threads on two cores wait on each other at every operation).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_dynamo_hook_guards():
    """AdaptiveLR in hook mode on a compiled model turns dynamo's module-hook guards on for the
    process; each test starts from dynamo's default again, so no test depends on the order."""
    yield
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.config.skip_nnmodule_hook_guards = True


REPO = Path(__file__).resolve().parents[1]

#: A tiny MNIST run (a few seconds on a CPU): the config every training test starts from.
TINY_MNIST: dict[str, Any] = {
    "dataset": "mnist",
    "model": "mnist_cnn",
    "optimizer": "momentum",
    "schedule": "lipschitz",
    "epochs": 3,
    "batch_size": 128,
    # K1 = 1/x keeps a tiny run's rates moderate (K1 = x gives ~6)
    "schedule_args": {"initial_lr": 0.05, "momentum_seed": "reciprocal"},
    "train_subset": 1024,
    "test_subset": 500,
}


def write_tiny_config(path: Path, **changes: Any) -> Path:
    """Write :data:`TINY_MNIST` with ``changes`` (a value of None drops the key) as a TOML file. LipschitzLR's
    ``schedule_args`` are dropped for other schedules unless ``changes`` gives some."""
    keys = {**TINY_MNIST, **changes}
    if keys["schedule"] != "lipschitz" and "schedule_args" not in changes:
        keys["schedule_args"] = None
    keys = {key: value for key, value in keys.items() if value is not None}
    path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in keys.items()))
    return path


def _toml(value: Any) -> str:
    """A TOML value: JSON's scalars and arrays are TOML's; a dict is an inline table."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items() if v is not None) + "}"
    return json.dumps(value)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST in torchvision's layout, where every entry point looks: $LIPSCHITZ_LR_DATA, else data/
    (``make test`` sets the variable to ../shared/data where that exists)."""
    from lipschitz_lr_experiments.data import resolve_data_dir

    root = resolve_data_dir()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.fail(
            f"MNIST is not under {root}: download it there once (`lipschitz-lr download mnist`), or set "
            "LIPSCHITZ_LR_DATA to a folder holding MNIST/raw"
        )
    return root


def write_tiny_cifar(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """CIFAR-10 and CIFAR-100 archives in torchvision's python pickle format, with random images."""
    rng = np.random.default_rng(seed)

    def batch(n: int, label_key: bytes, k: int) -> dict:
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: rng.integers(0, k, n).tolist()}

    c10 = root / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for i in range(1, 6):
        (c10 / f"data_batch_{i}").write_bytes(pickle.dumps(batch(n_train // 5, b"labels", 10)))
    (c10 / "test_batch").write_bytes(pickle.dumps(batch(n_test, b"labels", 10)))
    c100 = root / "cifar-100-python"
    c100.mkdir(parents=True)
    (c100 / "train").write_bytes(pickle.dumps(batch(n_train, b"fine_labels", 100)))
    (c100 / "test").write_bytes(pickle.dumps(batch(n_test, b"fine_labels", 100)))
    return root


def write_tiny_mnist_format(root: Path, folder: str, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """Uncompressed idx files as torchvision stores MNIST, FashionMNIST and KMNIST (``<folder>/raw/``)."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes()
        )
    return root


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory) -> Path:
    return write_tiny_cifar(tmp_path_factory.mktemp("cifar"))
