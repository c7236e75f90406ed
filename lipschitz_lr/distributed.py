"""The statistics of every rank, reduced to one: :func:`all_reduce_max` (the bounds take maxima over batches,
so the maximum over ranks is the maximum over the whole training set)."""

from __future__ import annotations

import math

import torch

from .statistics import LipschitzStatistics

__all__ = ["all_reduce_max"]


def all_reduce_max(stats: LipschitzStatistics, device: torch.device | str | None = None) -> LipschitzStatistics:
    """MAX all-reduce of the statistics across the default process group.

    Every rank must call this, also a rank that saw no batch (its zeros do not change the max).
    One collective per call: on the CPU for gloo; for NCCL on ``device``, the rank's GPU (AdaptiveLR
    passes its model's device), else on the current CUDA device. Reducing on the current device of a
    process that never called ``torch.cuda.set_device`` put every rank on ``cuda:0``: NCCL's
    duplicate-GPU error, or a hang.
    """
    import torch.distributed as dist

    if dist.get_backend() != "nccl":
        device = torch.device("cpu")
    elif device is None:
        device = torch.device("cuda", torch.cuda.current_device())
    elif torch.device(device).type != "cuda":
        raise ValueError(
            f"the NCCL backend reduces on a GPU, but the model is on {device}; put each rank's model on its GPU "
            "(model.to(f'cuda:{local_rank}')) or use the gloo backend"
        )
    # the pass loss: -inf where a rank did not measure it (NaN), so that any measured one wins the maximum
    loss = -math.inf if math.isnan(stats.loss) else stats.loss
    values = torch.tensor(
        [stats.k_z, stats.s, stats.output_norm, stats.target_norm, stats.batch_rows, stats.max_weight_norm, loss],
        dtype=torch.float64,
        device=device,
    )
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    loss = float(values[6])
    return LipschitzStatistics.from_maxima(
        values[:5].cpu(), float(values[5]), stats.num_batches, math.nan if loss == -math.inf else loss
    )
