"""What only a GPU can confirm. Every test here is marked ``gpu`` and skipped without CUDA (CI has none);
on a GPU machine: ``pytest -m gpu tests/test_gpu.py`` (``benchmarks/gpu_check.py`` runs it first)."""

import json

import pytest
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR, bounds, collect_statistics

pytestmark = pytest.mark.gpu


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def _batches(device, n=4, m=64):
    g = torch.Generator().manual_seed(0)
    return [
        (torch.rand(m, 1, 28, 28, generator=g).to(device), torch.randint(0, 10, (m,), generator=g).to(device))
        for _ in range(n)
    ]


def test_k_z_on_cuda_is_the_cpus_in_true_fp32_and_close_with_tf32():
    cpu = collect_statistics(_model(), _batches("cpu")).k_z
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        fp32 = collect_statistics(_model().cuda(), _batches("cuda")).k_z
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        tf32 = collect_statistics(_model().cuda(), _batches("cuda")).k_z
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert fp32 == pytest.approx(cpu, rel=1e-5)
    assert tf32 == pytest.approx(cpu, rel=1e-2)


def test_a_tiny_run_on_cuda_records_its_device_and_precision(tmp_path, data_dir):
    from lipschitz_lr_experiments.config import load_config
    from lipschitz_lr_experiments.train import RunOptions, run_experiment
    from tests.conftest import write_tiny_config

    config = load_config(write_tiny_config(tmp_path / "tiny.toml", epochs=2, train_subset=1024))
    history = run_experiment(
        config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, device="cuda", progress=False)
    )
    assert len(history) == 2 and all(row["lr"] > 0 for row in history)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["device"].startswith("cuda: ") and summary["precision"]["device_type"] == "cuda"


def test_the_trainer_refuses_cpu_data_for_a_cuda_run(tmp_path, data_dir):
    from lipschitz_lr_experiments.config import load_config
    from lipschitz_lr_experiments.data import load_dataset
    from lipschitz_lr_experiments.train import RunOptions, Trainer
    from tests.conftest import write_tiny_config

    config = load_config(write_tiny_config(tmp_path / "tiny.toml", epochs=1, train_subset=256))
    data = load_dataset("mnist", data_dir, device="cpu", train_subset=256, test_subset=100)
    with pytest.raises(ValueError, match="are on cpu but the run trains on cuda"):
        Trainer(config, RunOptions(out_dir=tmp_path / "run", device="cuda"), data=data)


def test_one_rank_nccl_all_reduce_runs_on_the_models_gpu(tmp_path):
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.device_count() - 1)  # not cuda:0 where there are several
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1, device_id=device)
    try:
        model = _model().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = AdaptiveLR(optimizer, model, _batches(device), num_classes=10, distributed=True)
        assert scheduler.history[0].lr > 0
    finally:
        dist.destroy_process_group()


def test_the_closed_form_bounds_take_cuda_tensors():
    x = torch.tensor([[3.0, 4.0]], device="cuda")
    assert bounds.logistic_regression_bound(x) == pytest.approx(2.5)
