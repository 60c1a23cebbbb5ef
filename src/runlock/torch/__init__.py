"""PyTorch helpers: seeded DataLoaders, seeded blocks, and RNG checkpoints (the ``torch`` extra).

    loader_kwargs(seed, epoch)      generator + worker_init_fn for a DataLoader
    seeded(stream)                  a block whose torch randomness comes from a named stream
    seeded_peft_model(model, cfg)   peft.get_peft_model with adapter init drawn from a seeded stream
    rng_state() / restore_rng_state(state)   every RNG, in a form torch.load(weights_only=True) reads
"""

from __future__ import annotations

from runlock.torch.loader import WorkerSeeder, loader_kwargs
from runlock.torch.peft import seeded_peft_model
from runlock.torch.rng import RNG_STATE_FORMAT, restore_rng_state, rng_state, seeded

__all__ = [
    "RNG_STATE_FORMAT", "WorkerSeeder", "loader_kwargs", "restore_rng_state", "rng_state",
    "seeded", "seeded_peft_model",
]
