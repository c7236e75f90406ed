"""lipschitz_lr.batches: the statistics loader."""

import pytest
import torch

from lipschitz_lr.batches import statistics_loader


def test_the_statistics_loader_for_a_gpu_model_pins_memory_and_uses_workers():
    dataset = torch.utils.data.TensorDataset(torch.randn(10, 3), torch.zeros(10))
    on_cpu = statistics_loader(dataset, 4, "cpu")
    assert on_cpu.num_workers == 0 and not on_cpu.pin_memory and len(on_cpu) == 3
    on_gpu = statistics_loader(dataset, 4, torch.device("cuda", 0))  # built, not iterated: no GPU needed
    assert on_gpu.pin_memory and on_gpu.num_workers >= 1 and on_gpu.persistent_workers
    assert statistics_loader(dataset, 4, "cuda", num_workers=0).num_workers == 0  # the caller's word wins
    with pytest.raises(ValueError, match="in order and keeps every example"):
        statistics_loader(dataset, 4, shuffle=True)
