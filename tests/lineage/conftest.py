from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runlock.store import Store
from tests.lineage.world import World, build


@pytest.fixture
def make_world(tmp_path: Path) -> Callable[[Store], World]:
    """Factory: ``make_world(store)`` fills ``store`` with the small world of ``world.py``."""
    def factory(store: Store) -> World:
        return build(store, tmp_path)
    return factory
