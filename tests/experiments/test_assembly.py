"""lipschitz_lr_experiments.assembly: a run's data, network and batches, and what it refuses before training."""

import pytest
import torch

from lipschitz_lr_experiments.config import ConfigError, load_config
from lipschitz_lr_experiments.train import RunOptions, Trainer
from tests.experiments.test_train import tiny_config


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path, data_dir):
    """It trained at lr 8,976 after a warning: LipschitzLR's m was the batch size, every batch held fewer rows."""
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=100)).replace(batch_size=128)
    with pytest.raises(ConfigError, match=r"batch_size=128 exceeds the training set \(100 examples\)"):
        Trainer(config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_data_on_another_device_than_the_run_is_refused(tmp_path):
    """statistics_subset.py loaded data on the CPU while the Trainer picked CUDA: a device error deep inside."""
    from lipschitz_lr_experiments.data import DataSplits

    meta = torch.empty(8, 1, 28, 28, device="meta")
    data = DataSplits(meta, torch.zeros(8, dtype=torch.long), meta, torch.zeros(8, dtype=torch.long), 10, None)
    config = load_config(tiny_config(tmp_path, epochs=1, train_subset=8)).replace(batch_size=8)
    with pytest.raises(ValueError, match=r"the training images are on meta but the run trains on cpu"):
        Trainer(config, RunOptions(out_dir=tmp_path / "run", device="cpu"), data=data)
