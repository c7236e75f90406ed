"""The dataset registry (MNIST, FashionMNIST, KMNIST, CIFAR-10, CIFAR-100) as tensors on the training
device, and batched augmentation.

Datasets are read with torchvision from its on-disk format under one data directory (:func:`resolve_data_dir`:
``--data-dir``, else ``$LIPSCHITZ_LR_DATA``, else :func:`default_data_dir`), and a set that is missing is
downloaded there once by torchvision's downloader (its checksums; MNIST's files are also checked against their
published SHA-256), or refused in one line (:class:`DatasetUnavailable`) offline. The whole set is kept as one
tensor on the training device and batches are sliced from it; augmentation is a batched random
affine warp (``affine_grid`` + ``grid_sample``) on that device, so a GPU is not starved by
per-image CPU transforms.

Preprocessing as in the paper: ``x / 255``; CIFAR minus the per-pixel mean image of the training
set. Augmentation as the authors' Keras ``ImageDataGenerator``: MNIST rotation 15 degrees, zoom
0.1, shifts 0.1 (FashionMNIST and KMNIST, which the paper does not use, take MNIST's); CIFAR
continuous shifts up to 10% with nearest-edge fill and horizontal flips.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry
from .settings import DATA_ENV

logger = logging.getLogger(__name__)

#: The folder this package's checkout is in (``experiments/lipschitz_lr_experiments/`` -> the project root).
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """Where datasets live when neither ``--data-dir`` nor ``$LIPSCHITZ_LR_DATA`` says: ``data/`` at the project's
    root in a checkout (ignored by git), else ``~/.cache/lipschitz-lr/data`` (an installed wheel)."""
    if (_PROJECT_ROOT / "pyproject.toml").is_file() and (_PROJECT_ROOT / "lipschitz_lr").is_dir():
        return _PROJECT_ROOT / "data"
    return Path.home() / ".cache" / "lipschitz-lr" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$LIPSCHITZ_LR_DATA``, else :func:`default_data_dir`. The one rule
    the CLI, the demo, the notebooks and the tests follow."""
    if data_dir is not None:
        return Path(data_dir)
    from_environment = os.environ.get(DATA_ENV)
    return Path(from_environment) if from_environment else default_data_dir()


class DatasetUnavailable(FileNotFoundError):
    """A dataset that is not on disk and could not (or may not) be downloaded; its message is the one line to show."""


@dataclass(frozen=True)
class Augmentation:
    """Random affine augmentation, Keras ``ImageDataGenerator`` semantics, batched."""

    rotation_degrees: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    horizontal_flip: bool = False

    @property
    def is_identity(self) -> bool:
        return self.rotation_degrees == 0 and self.zoom == 0 and self.shift == 0 and not self.horizontal_flip

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Warp a batch (N x C x H x W, float) with per-image random parameters.

        Random numbers are drawn on the CPU from ``generator`` (reproducible whatever the device)
        and moved to the images' device. Bilinear interpolation, nearest-edge fill.
        """
        if self.is_identity:
            return images
        n = images.shape[0]

        def uniform(low: float, high: float) -> Tensor:
            return torch.rand(n, generator=generator, dtype=torch.float32) * (high - low) + low

        angle = uniform(-self.rotation_degrees, self.rotation_degrees) * (math.pi / 180.0)
        zoom_x = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        zoom_y = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        # Shifts as a fraction of the size; affine_grid's coordinates span [-1, 1], i.e. 2 units.
        shift_x = uniform(-self.shift, self.shift) * 2.0
        shift_y = uniform(-self.shift, self.shift) * 2.0
        flip = torch.ones(n)
        if self.horizontal_flip:
            flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Output pixel p samples input at A p + t: rotation, then zoom, then flip of the sampled x.
        theta = torch.stack(
            [
                torch.stack([cos * zoom_x * flip, -sin * zoom_y, shift_x], dim=1),
                torch.stack([sin * zoom_x * flip, cos * zoom_y, shift_y], dim=1),
            ],
            dim=1,
        )
        if images.device.type == "cuda":  # pinned, so the copy does not wait for the GPU's queue
            theta = theta.pin_memory().to(images.device, images.dtype, non_blocking=True)
        else:
            theta = theta.to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class TensorBatches:
    """Batches sliced from tensors already on the device: a minimal, fast DataLoader.

    Iterating shuffles (if asked) with ``generator`` and augments each batch on the device.
    The partial last batch is kept, unless it would hold a single example and ``drop_single`` is set
    (training: BatchNorm cannot train on one example; the paper's sets never leave one).
    ``batch_size`` and ``len()`` behave as a DataLoader's.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        augmentation: Augmentation | None = None,
        generator: torch.Generator | None = None,
        drop_single: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"requires a positive batch_size, got batch_size={batch_size}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images ({images.shape[0]}) and labels ({labels.shape[0]}) differ in length")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.generator = generator if generator is not None else torch.Generator()
        n = images.shape[0]
        #: How many examples are read per epoch (all but a dropped single last one).
        self.examples = n - 1 if drop_single and n > 1 and n % batch_size == 1 else n

    def __len__(self) -> int:
        return math.ceil(self.examples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.images.device)
        for start in range(0, self.examples, self.batch_size):
            if self.shuffle:
                index = order[start : start + self.batch_size]
                x, y = self.images[index], self.labels[index]
            else:
                x, y = self.images[start : start + self.batch_size], self.labels[start : start + self.batch_size]
            if self.augmentation is not None:
                x = self.augmentation(x, self.generator)
            yield x, y


@dataclass
class DataSplits:
    """Preprocessed training and test tensors (float32, N x C x H x W) on one device."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    num_classes: int
    augmentation: Augmentation


_CIFAR_LAYOUT = {
    # folder, training files, test files, label key
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def _read_cifar(folder: Path, files: list[str], label_key: bytes) -> tuple[Tensor, Tensor]:
    """Read CIFAR batches in the python pickle format that torchvision downloads and reads."""
    import pickle

    images, labels = [], []
    for name in files:
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data, targets = batch[b"data"], batch[label_key]
            image_tensor = torch.as_tensor(data, dtype=torch.uint8).reshape(-1, 3, 32, 32)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"{path} is damaged or not a CIFAR batch (expected a pickled dict with b'data' of N x 3072 bytes and "
                f"{label_key!r}): {type(error).__name__}: {error}"
            ) from error
        if len(targets) != image_tensor.shape[0]:
            raise ValueError(f"{path} is damaged: {image_tensor.shape[0]} images but {len(targets)} labels")
        images.append(image_tensor)
        labels.append(torch.as_tensor(targets, dtype=torch.long))
    return torch.cat(images), torch.cat(labels)


def _missing(dataset: str, root: Path, why: BaseException | None = None) -> DatasetUnavailable:
    """The one line for a dataset that is not under ``root``: why it could not be fetched, and the ways to fix it."""
    where = f"{dataset} is not under {root.resolve()} (expected {DATASETS[dataset].expected_files})"
    if why is None:
        return DatasetUnavailable(
            f"{where}, and downloads are off: drop --no-download when online, or point "
            f"--data-dir or ${DATA_ENV} at a folder that holds it"
        )
    reason = " ".join(str(why).split()) or type(why).__name__
    return DatasetUnavailable(
        f"{where}, and downloading it failed ({reason[:300]}): connect to the internet and run again, or copy the "
        f"files there, or point --data-dir or ${DATA_ENV} at a folder that holds them"
    )


# MNIST's idx files: name -> (magic number, number of dimensions after the count).
_MNIST_IDX = {
    "train-images-idx3-ubyte": (2051, 2),
    "train-labels-idx1-ubyte": (2049, 0),
    "t10k-images-idx3-ubyte": (2051, 2),
    "t10k-labels-idx1-ubyte": (2049, 0),
}


def _check_mnist_files(raw: Path) -> None:
    """Check each idx file of an MNIST-format set that is present against its own header (a truncated or foreign file
    gets an error naming it, instead of torchvision's "not found" or "offset must be non-negative"), and the
    images of each split against its labels (a labels file of the other split would pair images with wrong
    labels)."""
    counts: dict[str, int] = {}
    for name, (magic, dims) in _MNIST_IDX.items():
        path = raw / name
        if not path.exists():
            continue
        size = path.stat().st_size
        header_bytes = 4 * (2 + dims)
        with open(path, "rb") as f:
            header = f.read(header_bytes)
        if len(header) < header_bytes or int.from_bytes(header[:4], "big") != magic:
            raise ValueError(
                f"{path} is not an MNIST idx file ({size} bytes; expected a header with magic number {magic}); "
                "delete it and run again to download it (when online)"
            )
        shape = [int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(1, 2 + dims)]
        expected = header_bytes + math.prod(shape)
        if size != expected:
            what = f"{shape[0]} images of {shape[1]}x{shape[2]}" if dims else f"{shape[0]} labels"
            raise ValueError(
                f"{path} is damaged: {size} bytes, but its header describes {what} ({expected} bytes); "
                "delete it and run again to download it (when online)"
            )
        counts[name] = shape[0]
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if images in counts and labels in counts and counts[images] != counts[labels]:
            raise ValueError(
                f"{raw / labels} holds {counts[labels]} labels but {raw / images} holds {counts[images]} images: "
                "one of them belongs to another split or dataset; delete both and run again "
                "(it is downloaded again when online)"
            )


RawSplits = tuple[Tensor, Tensor, Tensor, Tensor]


#: The published SHA-256 of MNIST's four uncompressed files, checked after a download (torchvision checks the
#: archives' md5 as it fetches them; this checks what was unpacked).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _check_published(raw: Path, fetched: list[str], digests: dict[str, str]) -> None:
    """Each file just ``fetched`` into ``raw`` against its published SHA-256; a mismatch is deleted and refused."""
    import hashlib

    for name in fetched:
        path = raw / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != digests[name]:
            path.unlink()
            raise DatasetUnavailable(
                f"{path} as downloaded has SHA-256 {digest}, not the published {digests[name]}: deleted; run again "
                "to download it again (a mirror or proxy may have changed it)"
            )


def _mnist_format_loader(dataset: str, torchvision_class: str) -> Callable[[Path, bool], RawSplits]:
    """MNIST and the sets torchvision stores in its format (``<Class>/raw/`` idx files), downloaded when missing
    and allowed."""

    def load(root: Path, download: bool) -> RawSplits:
        from torchvision import datasets

        raw = root / torchvision_class / "raw"
        _check_mnist_files(raw)
        missing = [name for name in _MNIST_IDX if not (raw / name).exists()]
        if missing and download:
            logger.info("downloading %s into %s", dataset, raw)
        try:
            train = getattr(datasets, torchvision_class)(root=str(root), train=True, download=download)
            test = getattr(datasets, torchvision_class)(root=str(root), train=False, download=download)
        except (RuntimeError, OSError) as error:  # not there; or the download failed (URLError is an OSError)
            raise _missing(dataset, root, error if download and missing else None) from error
        if missing and dataset == "mnist":
            _check_published(raw, missing, MNIST_SHA256)
        return train.data.unsqueeze(1), train.targets, test.data.unsqueeze(1), test.targets

    return load


def _cifar_loader(dataset: str, torchvision_class: str) -> Callable[[Path, bool], RawSplits]:
    folder_name, train_files, test_files, label_key = _CIFAR_LAYOUT[dataset]

    def load(root: Path, download: bool) -> RawSplits:
        folder = root / folder_name
        if not all((folder / name).exists() for name in train_files + test_files):
            if not download:
                raise _missing(dataset, root)
            from torchvision import datasets

            logger.info("downloading %s into %s", dataset, root)
            try:  # downloads and checks the archive's md5
                getattr(datasets, torchvision_class)(root=str(root), train=True, download=True)
            except (RuntimeError, OSError) as error:
                raise _missing(dataset, root, error) from error
        return (*_read_cifar(folder, train_files, label_key), *_read_cifar(folder, test_files, label_key))

    return load


def _cifar_files(dataset: str) -> str:
    folder, train_files, test_files, _ = _CIFAR_LAYOUT[dataset]
    return f"{folder}/ ({', '.join(train_files + test_files)})"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the registry.

    Attributes:
        num_classes: the number of labels (``k`` of the bound).
        augmentation: the authors' training augmentation for it.
        load: ``load(root, download) -> (train_images, train_labels, test_images, test_labels)``,
            uint8 images N x C x H x W as torchvision stores them.
        expected_files: what must be under the data directory (named in the "not found" error).
        subtract_mean_image: subtract the training set's per-pixel mean image (the paper's CIFAR
            preprocessing) after ``x / 255``.
        sizes: the official split's ``(training, test)`` examples and ``image_shape`` (C, H, W): what a run
            costs, known without the files (``lipschitz-lr reproduce --dry-run``).
    """

    num_classes: int
    augmentation: Augmentation
    load: Callable[[Path, bool], RawSplits]
    expected_files: str
    subtract_mean_image: bool = False
    sizes: tuple[int, int] = (0, 0)
    image_shape: tuple[int, int, int] = (1, 28, 28)


_MNIST_FILES = ", ".join(_MNIST_IDX)
#: The authors' MNIST augmentation; FashionMNIST and KMNIST use it too (the paper has no runs on them).
_MNIST_AUGMENTATION = Augmentation(rotation_degrees=15.0, zoom=0.1, shift=0.1)
_CIFAR_AUGMENTATION = Augmentation(shift=0.1, horizontal_flip=True)


def _mnist_format(dataset: str, folder: str) -> DatasetSpec:
    return DatasetSpec(
        10,
        _MNIST_AUGMENTATION,
        _mnist_format_loader(dataset, folder),
        f"{folder}/raw/ ({_MNIST_FILES})",
        sizes=(60_000, 10_000),
        image_shape=(1, 28, 28),
    )


def _cifar(dataset: str, torchvision_class: str, num_classes: int) -> DatasetSpec:
    loader = _cifar_loader(dataset, torchvision_class)
    return DatasetSpec(
        num_classes,
        _CIFAR_AUGMENTATION,
        loader,
        _cifar_files(dataset),
        subtract_mean_image=True,
        sizes=(50_000, 10_000),
        image_shape=(3, 32, 32),
    )


#: The dataset registry: a config's ``dataset`` names one (test: ``tests/experiments/test_data.py``).
DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    {
        "mnist": _mnist_format("mnist", "MNIST"),
        "fashionmnist": _mnist_format("fashionmnist", "FashionMNIST"),
        "kmnist": _mnist_format("kmnist", "KMNIST"),
        "cifar10": _cifar("cifar10", "CIFAR10", 10),
        "cifar100": _cifar("cifar100", "CIFAR100", 100),
    },
)


def load_dataset(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    device: torch.device | str = "cpu",
    download: bool = True,
    train_subset: int | None = None,
    test_subset: int | None = None,
) -> DataSplits:
    """Load, preprocess and move a dataset to ``device``; a dataset not under the data directory is downloaded
    there first (``download=False``: refused, :class:`DatasetUnavailable`).

    ``train_subset``/``test_subset`` keep the first N images (for demos and tests); the CIFAR
    mean image is computed on the training images that are kept.
    """
    spec = DATASETS.lookup(dataset)
    root = resolve_data_dir(data_dir)
    train_x, train_y, test_x, test_y = spec.load(root, download)
    for split, images, labels in (("training", train_x, train_y), ("test", test_x, test_y)):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{dataset} under {root.resolve()}: the {split} split has {images.shape[0]} images but "
                f"{labels.shape[0]} labels ({spec.expected_files}); download the dataset again"
            )
    if train_subset is not None:
        train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    if test_subset is not None:
        test_x, test_y = test_x[:test_subset], test_y[:test_subset]
    device = torch.device(device)
    train = train_x.to(device).float().div_(255.0)
    test = test_x.to(device).float().div_(255.0)
    if spec.subtract_mean_image:
        mean_image = train.mean(dim=0, keepdim=True)
        train -= mean_image
        test -= mean_image
    return DataSplits(train, train_y.to(device), test, test_y.to(device), spec.num_classes, spec.augmentation)
