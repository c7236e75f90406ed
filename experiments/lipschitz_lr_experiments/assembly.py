"""How a run's pieces are put together before its first epoch: the data on the run's device, the network
wrapped for several processes and for ``torch.compile``, and the training batches of this process."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from .config import ExperimentConfig
from .data import DataSplits, TensorBatches, load_dataset
from .distributed import DistContext
from .errors import ConfigError

logger = logging.getLogger(__name__)


def run_data(
    config: ExperimentConfig,
    device: torch.device,
    data_dir: Path | None,
    *,
    download: bool,
    channels_last: bool,
    data: DataSplits | None = None,
) -> DataSplits:
    """The config's dataset on ``device`` (``data`` when given, which must be there already), its images in
    channels-last order when asked (once: every batch sliced from them keeps it)."""
    data = data or load_dataset(
        config.dataset,
        data_dir,
        device=device,
        download=download,
        train_subset=config.train_subset,
        test_subset=config.test_subset,
    )
    for split, tensor in (("training images", data.train_images), ("test images", data.test_images)):
        if tensor.device != device:
            raise ValueError(
                f"the {split} are on {tensor.device} but the run trains on {device}: load the data on the "
                f"run's device (load_dataset(..., device={str(device)!r})) or pass --device {tensor.device}"
            )
    if channels_last and data.train_images.dim() == 4:
        data = dataclasses.replace(
            data,
            train_images=data.train_images.contiguous(memory_format=torch.channels_last),
            test_images=data.test_images.contiguous(memory_format=torch.channels_last),
        )
    return data


def wrapped_model(net: nn.Module, dist: DistContext, device: torch.device, *, compile: bool, seed: int) -> nn.Module:
    """What the training forward calls: ``net`` in ``DistributedDataParallel`` under torchrun (each rank then
    draws its own dropout masks), compiled with ``compile`` (the statistics pass and evaluation use ``net``)."""
    model = net
    if dist.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
        torch.manual_seed(seed + 1000 * dist.rank)
    return torch.compile(model) if compile else model


def training_batches(
    config: ExperimentConfig, data: DataSplits, dist: DistContext, generator: torch.Generator
) -> tuple[TensorBatches, TensorBatches]:
    """This process's training batches (shuffled by ``generator``, augmented where the config says) and the
    same examples clean and in order at the batch size (LipschitzLR's statistics pass reads those)."""
    images, labels = dist.shard(data.train_images), dist.shard(data.train_labels)
    n_train = data.train_images.shape[0]
    if dist.enabled and n_train % dist.world_size:
        logger.info(
            "%d training examples over %d ranks: each rank takes %d, %d of them repeated so that every rank "
            "takes the same steps",
            n_train,
            dist.world_size,
            dist.shard_size(n_train),
            dist.shard_size(n_train) * dist.world_size - n_train,
        )
    if config.batch_size > images.shape[0]:
        where = f" on each of {dist.world_size} ranks" if dist.enabled else ""
        raise ConfigError(
            f"batch_size={config.batch_size} exceeds the training set ({images.shape[0]} examples{where}): "
            "every batch would be smaller than the batch size (LipschitzLR's m); set batch_size to at most "
            f"{images.shape[0]} (that many for full-batch training), or train on more examples"
        )
    augmentation = data.augmentation if config.augment else None
    loader = TensorBatches(
        images,
        labels,
        config.batch_size,
        shuffle=True,
        augmentation=augmentation,
        generator=generator,
        drop_single=True,
    )
    if loader.examples < images.shape[0]:
        logger.info(
            "%d training examples at batch %d leave a last batch of one example, which BatchNorm cannot train on: "
            "each epoch trains on %d (a different one each epoch); the statistics pass reads them all",
            images.shape[0],
            config.batch_size,
            loader.examples,
        )
    return loader, TensorBatches(images, labels, config.batch_size)
