"""Seeded DataLoader arguments.

A DataLoader is reproducible when its sampler draws from a seeded ``generator`` and each worker
reseeds every generator it holds. Workers are forked (or unpickled) copies of the main process, so
an RNG a dataset built in ``__init__`` is identical in every worker and, without persistent
workers, starts from the same state every epoch. ``WorkerSeeder`` reseeds those too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from runlock.seeding import MAX_HASHSEED, derive_seed, reseed_rngs


@dataclass(frozen=True)
class WorkerSeeder:
    """``worker_init_fn`` seeding Python, NumPy, torch and dataset-held RNGs in each worker.

    The worker seed is ``derive_seed(seed, "worker", epoch=, rank=, worker=, torch_seed=)``;
    ``torch_seed`` is torch's own per-worker seed, drawn from the loader's seeded generator, so a
    DataLoader reused across epochs still gets new worker streams each epoch, reproducibly.
    """

    seed: int
    epoch: int = 0
    rank: int = 0

    def __call__(self, worker_id: int) -> None:
        info = torch.utils.data.get_worker_info()
        worker_seed = derive_seed(self.seed, "worker", epoch=self.epoch, rank=self.rank,
                                  worker=worker_id, torch_seed=int(info.seed) if info else 0)
        random.seed(worker_seed)
        np.random.seed([worker_seed & MAX_HASHSEED, worker_seed >> 32])
        torch.manual_seed(worker_seed)
        if info is not None:
            reseed_rngs(info.dataset, worker_seed)


def loader_kwargs(seed: int, epoch: int = 0, *, rank: int = 0) -> dict[str, Any]:
    """``DataLoader(ds, shuffle=True, **loader_kwargs(seed, epoch))``.

    The generator is seeded with ``derive_seed(seed, "data-order", epoch=epoch, rank=rank)``.
    """
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, "data-order", epoch=epoch, rank=rank))
    return {"generator": generator, "worker_init_fn": WorkerSeeder(seed, epoch, rank)}
