"""Data-parallel training across the processes `torchrun` starts: the plumbing `fit` calls when it is
given a `DataParallel` (model/training/train.py), and nothing else.

    torchrun --standalone --nproc_per_node 2 -m model.training.distributed_train --dataset simulator-tiny \\
        --preset tiny --model single --out runs/ddp

Every rank holds a full replica. Each epoch the training users are permuted by a generator that every
rank builds from the same (seed, epoch), so the ranks agree on the permutation without talking, and
rank r takes every world-th user of it: disjoint shards that together cover the epoch. Gradients are
averaged by DistributedDataParallel in `backward`; `train.batch_size` stays the global batch, each rank
stepping on its 1/world share, so a config means the same optimisation at any world size. Rank 0 alone
evaluates, keeps the best weights, checkpoints and saves; the others take its weights and its stop
decision at the end of every epoch.

The backend is gloo: CPU processes, on one machine or many. GPU ranks (NCCL, one device per
LOCAL_RANK) are not wired up.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.sequences import SequenceData

log = logging.getLogger(__name__)

STOP_REASONS = ("", "early_stopping", "time_budget")  # what a broadcast decision code means
SYNC_TOLERANCE = 1e-6  # relative gap between replicas' parameter sums that counts as diverged


class ReplicasDiverged(RuntimeError):
    """Ranks hold different weights after an epoch: gradients were not averaged across them."""


@dataclass(frozen=True)
class DataParallel:
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- the training step --------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """A callable `(batch, sampler) -> (loss, parts)` whose backward all-reduces gradients.

        DDP hooks gradient averaging on its own `forward`, and the models train through `step_loss`,
        so a thin module routes one into the other. find_unused_parameters: staged models leave
        parts idle in some epochs (GemiRec's generator during warm-up).
        """
        return DistributedDataParallel(_StepLoss(model), find_unused_parameters=True)

    def local_batch_size(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ValueError(f"train.batch_size={batch_size} is the global batch; it must divide "
                             f"evenly over {self.world_size} ranks")
        return batch_size // self.world_size

    def epoch_order(self, data: SequenceData, mode: str, epoch: int, seed: int, reps_max: int
                    ) -> tuple[np.ndarray, np.random.Generator]:
        """This rank's users for `epoch`, in order, and the generator for its random windows/cuts.

        The shard is padded like torch's DistributedSampler (the permutation's head repeats at its
        tail) so every rank takes the same number of steps: DDP's all-reduce needs every rank in it.
        Generators are built from (seed, epoch[, rank]), so a resumed run draws what it would have.
        """
        users = np.random.default_rng([seed, epoch]).permutation(data.training_users(mode, reps_max))
        pad = -len(users) % self.world_size
        users = np.concatenate([users, users[:pad]])
        return users[self.rank :: self.world_size], np.random.default_rng([seed, epoch, self.rank])

    # ---- what all ranks do together -----------------------------------------------------------
    def mean(self, values: list[float]) -> float:
        """The mean over every rank's values (the epoch's training loss over the whole epoch)."""
        total = torch.tensor([float(np.sum(values)), float(len(values))], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total[0] / total[1])

    @torch.no_grad()
    def sync(self, model: nn.Module) -> None:
        """Every rank takes rank 0's parameters and buffers: for changes made outside autograd
        (GemiRec's k-means and code restarts draw from a per-rank generator)."""
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)

    def decide(self, model: nn.Module, decision: str = "") -> str:
        """End of epoch: check the replicas agree, then rank 0's weights, buffers (what evaluation
        changed, e.g. GemiRec's warm-up curve) and stop decision reach every rank. Rank 0 passes its
        decision; the others pass nothing and get it back ("" = go on)."""
        self.check_in_sync(model)
        self.sync(model)
        code = torch.tensor([STOP_REASONS.index(decision)])
        dist.broadcast(code, src=0)
        return STOP_REASONS[int(code)]

    @torch.no_grad()
    def check_in_sync(self, model: nn.Module) -> None:
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
        gathered = [torch.zeros_like(total) for _ in range(self.world_size)]
        dist.all_gather(gathered, total)
        values = torch.stack(gathered)
        gap = float((values.max() - values.min()) / values.abs().max().clamp_min(1.0))
        if gap > SYNC_TOLERANCE:
            raise ReplicasDiverged(f"parameter sums per rank {values.tolist()} (relative gap {gap:.2e})")


class _StepLoss(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, sampler):
        return self.model.step_loss(batch, sampler)


def init_from_environment() -> DataParallel | None:
    """Join the process group `torchrun` describes in the environment; None when run as one process
    (WORLD_SIZE unset or 1), which keeps `fit` on its single-process path."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    parallel = DataParallel(dist.get_rank(), dist.get_world_size())
    log.info("rank %d of %d (%s)", parallel.rank, parallel.world_size, dist.get_backend())
    return parallel


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
