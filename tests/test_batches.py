"""lipschitz_lr.batches: the statistics loader."""

import pytest
import torch

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.batches import loader_length, statistics_loader


def test_the_statistics_loader_for_a_gpu_model_pins_memory_and_uses_workers():
    dataset = torch.utils.data.TensorDataset(torch.randn(10, 3), torch.zeros(10))
    on_cpu = statistics_loader(dataset, 4, "cpu")
    assert on_cpu.num_workers == 0 and not on_cpu.pin_memory and len(on_cpu) == 3
    on_gpu = statistics_loader(dataset, 4, torch.device("cuda", 0))  # built, not iterated: no GPU needed
    assert on_gpu.pin_memory and on_gpu.num_workers >= 1 and on_gpu.persistent_workers
    assert statistics_loader(dataset, 4, "cuda", num_workers=0).num_workers == 0  # the caller's word wins
    with pytest.raises(ValueError, match="in order and keeps every example"):
        statistics_loader(dataset, 4, shuffle=True)


class Stream(torch.utils.data.IterableDataset):
    """Batches that a DataLoader cannot count: its ``len()`` raises TypeError."""

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            yield torch.randn(4, 6, generator=g), torch.randint(0, 3, (4,), generator=g)


def test_an_iterable_loader_is_read_without_its_length():
    """``object of type 'Stream' has no len()`` at construction, in the check for per-batch steps."""
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    loader = torch.utils.data.DataLoader(Stream(), batch_size=None)
    assert loader_length(loader) is None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = AdaptiveLR(optimizer, model, loader, num_classes=3, batch_size=4)
    optimizer.step()
    scheduler.step()
    assert len(scheduler.history) == 2 and scheduler.history[-1].k_z > 0
    with pytest.raises(ValueError, match="warmup_epochs counts epochs in the statistics loader's batches"):
        AdaptiveLR(optimizer, model, loader, num_classes=3, batch_size=4, warmup_epochs=1)


def test_a_model_that_takes_the_dict_itself_is_told_about_call_model():
    class DictModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(6, 3)

        def forward(self, batch):
            return self.head(batch["features"])

    model = DictModel()
    batches = [{"features": torch.randn(4, 6), "label": torch.randint(0, 3, (4,))}]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'features'.*call_model=lambda model, batch"):
        AdaptiveLR(optimizer, model, batches, num_classes=3, head="head")
    scheduler = AdaptiveLR(optimizer, model, batches, num_classes=3, head="head", call_model=lambda m, b: m(b))
    assert scheduler.history[0].k_z > 0
