"""Training on several processes: ``torchrun`` / ``accelerate launch`` with DistributedDataParallel.

A launcher sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; ``Distributed.from_env`` joins the process group
(gloo on a CPU, nccl on CUDA, one GPU per process: ``LOCAL_RANK``) and the loop then

* takes the same global batch as a single process (``train.batch_size``, from the same seeded order) and gives
  each rank every ``world``-th item of it (``shard``);
* scales each rank's loss by its share of the batch, so DDP's gradient average is the gradient of the global
  batch's mean loss (exact for losses that are means over items; a loss that couples the items of a batch sees
  only the rank's part);
* writes checkpoints and the model folder from rank 0 only; every rank resumes from the same checkpoint.

Without a launcher (``WORLD_SIZE`` unset or 1) every method is a plain single-process pass-through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class _Call(nn.Module):
    """Runs a function as ``forward`` so DDP syncs gradients of losses built by ``QualityModel.forward_head``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Any) -> torch.Tensor:
        return fn()


@dataclass
class Distributed:
    """This process's place in a run: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    _ddp: Any = None

    @classmethod
    def from_env(cls, device: str = "cpu") -> Distributed:
        """Join the process group a launcher describes in the environment (or a single process without one).

        Args:
            device: ``train.device``; ``cuda`` selects nccl and the GPU ``LOCAL_RANK``, anything else gloo.

        Raises:
            ValueError: ``WORLD_SIZE`` > 1 with ``RANK`` or ``MASTER_ADDR`` missing (not started by a launcher).
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(f"WORLD_SIZE={world} but {missing} unset: start with torchrun or accelerate launch")
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = str(device).startswith("cuda")
        if cuda:
            torch.cuda.set_device(local_rank)  # "cuda" now means this process's GPU everywhere in the loop
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
        return cls(rank, world, local_rank)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints, the model folder and progress (rank 0)."""
        return self.rank == 0

    @contextmanager
    def writer_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. filling the feature cache), the others after it, reading what it wrote."""
        if self.active and not self.is_writer:
            dist.barrier()
        yield
        if self.active and self.is_writer:
            dist.barrier()

    def wrap(self, model: nn.Module) -> None:
        """Wrap the model for gradient syncing (rank 0's weights are broadcast to all ranks here)."""
        if self.active and any(p.requires_grad for p in model.parameters()):
            self._ddp = nn.parallel.DistributedDataParallel(_Call(model), find_unused_parameters=True)

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's items of a global batch: every ``world``-th one from ``rank``."""
        return idx[self.rank :: self.world] if self.active else idx

    def batch_loss(self, loss_of: Any, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The loss to back-propagate for the global batch ``idx`` and the global batch's mean loss (to log).

        Args:
            loss_of: ``loss_of(items) -> mean loss`` of some items of the batch.
            idx: The global batch (same on every rank).
        """
        if not self.active or self._ddp is None:
            loss = loss_of(idx)
            return loss, float(loss.detach())
        mine = self.shard(idx)
        share = len(mine) * self.world / len(idx)
        if len(mine):
            loss = self._ddp(lambda: loss_of(mine) * share)
        else:  # fewer items than ranks: take part in the gradient sync with a zero loss
            loss = self._ddp(lambda: loss_of(idx[:1]) * 0.0)
        total = loss.detach().clone()
        dist.all_reduce(total)
        return loss, float(total) / self.world

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Wait for every rank, then leave the process group (a no-op without one)."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
