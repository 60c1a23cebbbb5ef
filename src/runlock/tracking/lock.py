"""The lock: one canonical JSON document pinning everything a run's result depends on.

Its sha256 is the run's recipe id: two runs with the same recipe id must give the same result.
The lock holds only what determines the result (config, seeds, determinism knobs, code,
environment, inputs, entry point); who ran it, where and when live in the run record instead,
so rerunning the same recipe gives the same id.

While a run is running its lock may still grow (a declared input, a seeding report); each change
stores a new lock object and moves the run's recipe id. Once the run ends, the lock is final.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runlock import canonical, code, environment, seeding
from runlock.errors import InvalidInput
from runlock.store import Store

LOCK_SCHEMA = "runlock.lock/v1"


def entrypoint(argv: list[str] | None = None, cwd: Path | None = None) -> dict:
    """The command that ran, with paths inside the working directory made relative."""
    argv = list(sys.argv if argv is None else argv)
    cwd = (cwd or Path.cwd()).resolve()
    out = []
    for a in argv:
        p = Path(a)
        if p.is_absolute() and p.exists() and p.resolve().is_relative_to(cwd):
            a = str(p.resolve().relative_to(cwd))
        out.append(a)
    return {"argv": out}


def build(store: Store, *, config: object, seed: int | None, argv: list[str] | None = None,
          declared_knobs: dict | None = None) -> dict:
    try:
        config = canonical.normalize(config if config is not None else {})
    except InvalidInput as e:
        raise InvalidInput(f"The run's config cannot be recorded: {e.message}", hint=e.hint) from None
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise InvalidInput(f"Seed {seed!r} is not a non-negative integer.")
    env = environment.capture()  # first: it imports torch when installed, so the knobs see torch too
    return {
        "schema": LOCK_SCHEMA,
        "config": config,
        "seed": seed,
        "seeding": None,
        "knobs": canonical.normalize(seeding.knobs(**(declared_knobs or {}))),
        "code": code.capture(store.objects),
        "entrypoint": entrypoint(argv),
        "environment": env,
        "inputs": [],
    }


def add_input(lock: dict, entry: dict) -> bool:
    """Add an input entry (``{"node", "id", "ref", "kind"}``); False if already there."""
    if any(i["node"] == entry["node"] for i in lock["inputs"]):
        return False
    lock["inputs"] = sorted([*lock["inputs"], entry], key=lambda i: i["node"])
    return True


def store_lock(store: Store, lock: dict) -> str:
    """Store the lock as an object; its id is the recipe id."""
    return store.objects.put_bytes(canonical.dumps(lock))


def load(store: Store, recipe_id: str) -> dict:
    return canonical.loads(store.objects.get_bytes(recipe_id))
