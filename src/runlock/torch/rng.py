"""Named seeded blocks and RNG checkpoints.

``rng_state()`` returns a plain dict of tensors, ints and tuples that ``torch.save`` writes and
``torch.load(weights_only=True)`` reads back; ``restore_rng_state`` puts every generator back or
raises before changing anything.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from runlock.errors import InvalidInput
from runlock.seeding import derive_seed, root_seed

RNG_STATE_FORMAT = "runlock.rng_state/1"


@contextmanager
def seeded(stream: str, *, root: int | None = None, **coords: int | str) -> Iterator[int]:
    """Run a block with torch's global RNG (CPU and initialised CUDA devices) seeded from
    ``derive_seed(root, stream, **coords)``; restore the outer RNG state afterwards, so the block
    neither depends on nor shifts the randomness around it. ``root`` defaults to the seed of the
    last ``seed_everything`` call. Yields the derived seed.
    """
    seed = derive_seed(root_seed() if root is None else root, stream, **coords)
    devices = _cuda_devices_in_use()
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        for index in devices:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield seed


def rng_state(*, sampler: Any = None, generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Capture Python, NumPy (legacy global), torch CPU, every CUDA device, the sampler's epoch
    (anything with ``.epoch`` / ``.set_epoch``) and the named ``generators`` (e.g. a DataLoader's)."""
    if sampler is not None and not hasattr(sampler, "epoch"):
        raise InvalidInput(f"{type(sampler).__name__} has no .epoch to record.")
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "format": RNG_STATE_FORMAT,
        "python": (version, tuple(internal), gauss),
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch_cpu": torch.get_rng_state(),
        "cuda": [s.clone() for s in cuda],
        "sampler_epoch": None if sampler is None else int(sampler.epoch),
        "generators": {k: g.get_state() for k, g in sorted((generators or {}).items())},
    }


def restore_rng_state(state: Mapping[str, Any], *, sampler: Any = None,
                      generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put back everything ``rng_state`` captured. Raises InvalidInput, changing nothing, when
    something cannot be restored: another format, a different CUDA device count, a sampler epoch
    with no sampler (or the reverse), or generators that do not match by name."""
    generators = dict(generators or {})
    _check_restorable(state, sampler, generators)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    key = numpy["key"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], key, numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch_cpu"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    if sampler is not None:
        sampler.set_epoch(state["sampler_epoch"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])


def _check_restorable(state: Mapping[str, Any], sampler: Any, generators: dict[str, Any]) -> None:
    if not isinstance(state, Mapping) or state.get("format") != RNG_STATE_FORMAT:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise InvalidInput(f"Not a runlock RNG state (format {found!r}, expected {RNG_STATE_FORMAT!r}).")
    saved = len(state["cuda"])
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if saved != here:
        raise InvalidInput(f"The RNG state holds {saved} CUDA device state(s) but this process sees {here}.",
                           hint="Resume with the same visible CUDA devices (CUDA_VISIBLE_DEVICES).")
    if (state["sampler_epoch"] is None) != (sampler is None):
        have = "a sampler epoch" if state["sampler_epoch"] is not None else "no sampler epoch"
        raise InvalidInput(f"The RNG state has {have}; pass sampler= exactly when it was captured with one.")
    if sampler is not None and not hasattr(sampler, "set_epoch"):
        raise InvalidInput(f"{type(sampler).__name__} has no .set_epoch() to restore the epoch with.")
    if set(state["generators"]) != set(generators):
        raise InvalidInput(f"The RNG state holds generators {sorted(state['generators'])} but "
                           f"{sorted(generators)} were passed to restore.")


def _cuda_devices_in_use() -> list[int]:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []
