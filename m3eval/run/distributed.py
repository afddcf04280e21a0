"""Rank/world-size under torchrun or accelerate launch (both set RANK and WORLD_SIZE).

Ranks split samples `rank::world_size`; rank 0 gathers predictions and scores.
CPU processes talk over gloo, GPUs over nccl.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as td
            td.barrier()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's obj on rank 0 (None elsewhere)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as td
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        td.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as td
            if td.is_initialized():
                td.destroy_process_group()


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as td
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        td.init_process_group(backend=backend)
    return Dist(rank=rank, world_size=world, local_rank=local)
