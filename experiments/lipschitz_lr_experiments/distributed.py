"""Running under ``torchrun``: process group, device, data shards and metric reduction.

``torchrun --nproc_per_node=N -m lipschitz_lr_experiments run CONFIG`` starts N ranks. Each rank keeps
its shard of the training set (``images[rank::N]``, padded to equal sizes: :meth:`DistContext.shard`)
on its device, trains a DistributedDataParallel replica with the config's batch size **per rank** (so
LipschitzLR's ``m`` is the per-rank batch and the global batch is ``N * m``), and AdaptiveLR
all-reduces (MAX) its statistics so that every rank writes the same learning rate. Rank 0 writes
histories and checkpoints; every rank saves its own RNG states so that a resumed run continues each
rank's data order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_size(self, n: int) -> int:
        """How many of ``n`` examples each rank takes: ``ceil(n / world_size)``."""
        return -(-n // self.world_size)

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's examples ``rank, rank + N, ...`` as one contiguous copy, padded by wrapping around to the
        first examples (as ``DistributedSampler`` pads) so that every rank takes the same number of steps: with
        unequal shards one rank took an extra step, and DDP waited for it forever."""
        if not self.enabled:
            return tensor
        n = tensor.shape[0]
        index = torch.arange(self.rank, self.shard_size(n) * self.world_size, self.world_size) % n
        return tensor[index.to(tensor.device)]

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """All-reduce (SUM) a few numbers; a no-op on one process."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.barrier()  # no rank tears the group down while another still talks to it
            dist.destroy_process_group()


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the process group ``torchrun`` describes (if any); returns the context and the device to use.

    NCCL with ``cuda:LOCAL_RANK`` when CUDA is asked for or ``auto`` resolves to it (:func:`resolve_device`),
    else gloo on the CPU. The rank's device is set before the process group is made, and given to it.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = resolve_device(device).type == "cuda"
    owns = not dist.is_initialized()
    if use_cuda:  # the rank's GPU first: NCCL's communicator is bound to it (device_id), not to cuda:0
        rank_device = resolve_device(f"cuda:{local_rank}")
        torch.cuda.set_device(rank_device)
        device = str(rank_device)
    if owns:
        if use_cuda:
            dist.init_process_group("nccl", device_id=torch.device(device))
        else:
            dist.init_process_group("gloo")
    return DistContext(rank, world_size, local_rank, owns), ("cpu" if not use_cuda else device)
