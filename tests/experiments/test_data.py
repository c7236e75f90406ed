import pytest
import torch

from lipschitz_lr_experiments.data import (
    DATASETS,
    Augmentation,
    DatasetUnavailable,
    TensorBatches,
    default_data_dir,
    load_dataset,
    resolve_data_dir,
)
from tests.conftest import REPO, write_tiny_mnist_format


def test_mnist_from_shared_data(data_dir):
    data = load_dataset("mnist", data_dir)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert float(data.train_images.min()) == 0.0 and float(data.train_images.max()) == 1.0
    counts = torch.bincount(data.train_labels).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_missing_dataset_names_expected_path(tmp_path):
    """Without downloads (the tests never go online; tests/experiments/test_download.py serves MNIST itself)."""
    with pytest.raises(DatasetUnavailable, match=r"cifar-10-batches-py.*downloads are off"):
        load_dataset("cifar10", tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn", tmp_path)


def test_one_data_folder_the_argument_else_the_environment_else_data_at_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LIPSCHITZ_LR_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir("elsewhere").name == "elsewhere"
    monkeypatch.delenv("LIPSCHITZ_LR_DATA")
    assert resolve_data_dir() == default_data_dir() == REPO / "data"  # a checkout: ignored by git
    assert "/data/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize(("dataset", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_tiny_cifar_archives_mean_subtracted(tiny_cifar, dataset, classes):
    data = load_dataset(dataset, tiny_cifar)
    assert data.train_images.shape == (40, 3, 32, 32) and data.test_images.shape == (20, 3, 32, 32)
    assert data.num_classes == classes
    # minus the per-pixel mean image of the training set
    assert float(data.train_images.mean(dim=0).abs().max()) < 1e-6


def test_batches_keep_partial_last_batch_and_shuffle_reproducibly():
    x = torch.arange(10.0).reshape(10, 1, 1, 1)
    y = torch.arange(10)
    ordered = list(TensorBatches(x, y, 4))
    assert [len(b[1]) for b in ordered] == [4, 4, 2] and len(TensorBatches(x, y, 4)) == 3
    first = [b[1].tolist() for b in TensorBatches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(1))]
    again = [b[1].tolist() for b in TensorBatches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(1))]
    assert first == again and sorted(i for batch in first for i in batch) == list(range(10))


def test_augmentation_identity_flip_and_shift():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 32, 32)
    assert torch.equal(Augmentation()(images, g), images)
    flip = Augmentation(horizontal_flip=True)(images, torch.Generator().manual_seed(0))
    flipped = [torch.allclose(flip[i], images[i].flip(-1), atol=1e-5) for i in range(8)]
    kept = [torch.allclose(flip[i], images[i], atol=1e-5) for i in range(8)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)
    mnist = DATASETS["mnist"].augmentation(torch.rand(16, 1, 28, 28), g)
    assert mnist.shape == (16, 1, 28, 28) and torch.isfinite(mnist).all()


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "train-images-idx3-ubyte",
            1000,
            r"is damaged: 1000 bytes, but its header describes 60000 images of 28x28 \(47040016 bytes\)",
        ),
        (
            "t10k-labels-idx1-ubyte",
            100,
            r"is damaged: 100 bytes, but its header describes 10000 labels \(10008 bytes\)",
        ),
        ("train-labels-idx1-ubyte", b"not an idx file", "is not an MNIST idx file"),
    ],
)
def test_damaged_mnist_files_are_named(tmp_path, data_dir, name, content, message):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in MNIST_FILES:
        (raw / file).symlink_to(data_dir / "MNIST" / "raw" / file)
    (raw / name).unlink()
    original = (data_dir / "MNIST" / "raw" / name).read_bytes()
    (raw / name).write_bytes(original[:content] if isinstance(content, int) else content)
    with pytest.raises(ValueError, match=str(raw / name) + " " + message):
        load_dataset("mnist", tmp_path)


def test_a_damaged_cifar_file_is_named(tmp_path):
    from tests.conftest import write_tiny_cifar

    write_tiny_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="test_batch is damaged or not a CIFAR batch"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize(("dataset", "folder"), [("fashionmnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_other_mnist_format_sets_load_from_torchvisions_layout(tmp_path, dataset, folder):
    with pytest.raises(FileNotFoundError, match=f"{dataset} is not under .* \\(expected {folder}/raw/ "):
        load_dataset(dataset, tmp_path, download=False)
    write_tiny_mnist_format(tmp_path, folder, n_train=40, n_test=20)
    splits = load_dataset(dataset, tmp_path)
    assert splits.train_images.shape == (40, 1, 28, 28) and splits.test_labels.shape == (20,)
    assert splits.num_classes == 10 and 0 <= float(splits.train_images.min()) <= float(splits.train_images.max()) <= 1
    assert splits.augmentation == DATASETS["mnist"].augmentation


def test_a_labels_file_of_the_other_split_is_named_with_or_without_a_subset(tmp_path):
    """MNIST's train labels replaced by the test labels (here 40 images, 20 labels): with train_subset it trained
    on the wrong labels, without it the error did not name the file."""
    root = write_tiny_mnist_format(tmp_path, "MNIST", n_train=40, n_test=20)
    raw = root / "MNIST" / "raw"
    (raw / "train-labels-idx1-ubyte").write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes())
    for subset in (None, 10):
        with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte holds 20 labels but .*train-images-idx3-ubyte"):
            load_dataset("mnist", root, train_subset=subset)


def test_a_single_example_last_batch_is_dropped_only_when_asked():
    images, labels = torch.arange(9.0).reshape(9, 1), torch.arange(9)
    assert [len(y) for _, y in TensorBatches(images, labels, 4)] == [4, 4, 1]
    batches = TensorBatches(images, labels, 4, shuffle=True, drop_single=True)
    assert len(batches) == 2 and batches.examples == 8 and [len(y) for _, y in batches] == [4, 4]
    assert [len(y) for _, y in TensorBatches(images[:7], labels[:7], 4, drop_single=True)] == [4, 3]
    assert [len(y) for _, y in TensorBatches(images[:1], labels[:1], 4, drop_single=True)] == [1]
