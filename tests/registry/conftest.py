from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runlock.store import Store
from runlock.tracking.run import Run
from tests.lineage.conftest import make_world  # noqa: F401  (the same world factory)
from tests.lineage.world import train


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Run]:
    """Factory: ``make_run(store, name, payload)`` gives a finished run with an ``adapter`` folder."""
    def factory(store: Store, name: str = "lora", payload: bytes = b"weights", **kw) -> Run:
        return train(store, tmp_path, name, kw.pop("inputs", []), payload, **kw)
    return factory
