"""Two gloo processes on CPU see different data shards and must end with identical LRs."""

import json
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lipschitz_lr import AdaptiveLR, collect_statistics

WORLD_SIZE = 2


def shard(rank):
    g = torch.Generator().manual_seed(rank)
    scale = 1.0 + 2.0 * rank  # rank 1's activations are larger: rank 0 alone would get another LR
    return [(torch.randn(8, 5, generator=g) * scale, torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))


def worker(rank, store_path, out_dir, statistics):
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD_SIZE)
    try:
        model = nn.parallel.DistributedDataParallel(make_model())
        data = shard(rank)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
        sched = AdaptiveLR(
            opt, model, data, num_classes=3, variant="momentum", weight_decay=1e-3, statistics=statistics
        )
        for _ in range(3):
            model.train()
            for x, y in data:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            sched.step()
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"history": [r.lr for r in sched.history], "k_z": [r.k_z for r in sched.history]}, f)
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("statistics", ["reference", "hook"])
def test_two_gloo_ranks_end_with_identical_lrs(tmp_path, statistics):
    mp.spawn(worker, args=(str(tmp_path / "store"), str(tmp_path), statistics), nprocs=WORLD_SIZE, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert results[0]["history"] == results[1]["history"]
    assert len(results[0]["history"]) == 4
    assert all(math.isfinite(lr) and lr > 0 for lr in results[0]["history"])
    # Epoch 0: the all-reduced K_z is the max over both shards' batches, not rank 0's own.
    model = make_model()
    union = collect_statistics(model, shard(0) + shard(1), batchnorm="batch")  # AdaptiveLR's default pass
    own = collect_statistics(model, shard(0), batchnorm="batch")
    assert results[0]["k_z"][0] == pytest.approx(union.k_z, rel=1e-12)
    assert union.k_z > own.k_z


def test_the_all_reduce_runs_on_the_models_device_and_nccl_needs_a_gpu(monkeypatch):
    """NCCL reduced on "cuda", the current device: cuda:0 on every rank that never called set_device."""
    import lipschitz_lr.source as source
    from lipschitz_lr.distributed import all_reduce_max
    from lipschitz_lr.statistics import LipschitzStatistics

    seen = []
    monkeypatch.setattr(source, "all_reduce_max", lambda stats, device: seen.append(device) or stats)
    model = make_model()
    AdaptiveLR(torch.optim.SGD(model.parameters(), lr=0.1), model, shard(0), num_classes=3, distributed=True)
    assert seen == [torch.device("cpu")]
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl")
    stats = LipschitzStatistics.from_maxima([1.0, 0.0, 0.0, 0.0, 8.0], 1.0, 1)
    with pytest.raises(ValueError, match="the NCCL backend reduces on a GPU, but the model is on cpu"):
        all_reduce_max(stats, torch.device("cpu"))
