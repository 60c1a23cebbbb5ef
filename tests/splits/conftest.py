"""Factories: tables written to disk and snapshotted, ready to split."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from runlock.data import create_snapshot
from runlock.data.snapshot import Snapshot
from runlock.store import Store


def words_text(rng: random.Random, n: int = 20, vocab: int = 3000) -> str:
    return " ".join(f"w{rng.randrange(vocab)}" for _ in range(n))


def rows(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    """``n`` records with a 20-word text, a label, a customer and a day."""
    rng = random.Random(seed)
    return [{"id": f"r{i:05d}", "text": words_text(rng), "label": rng.choice("abc"),
             "customer": f"c{i % 23}", "day": f"2024-01-{1 + i % 28:02d}"} for i in range(start, start + n)]


@pytest.fixture
def make_snapshot(tmp_path: Path) -> Callable[..., Snapshot]:
    """Factory: ``make_snapshot(store, records, name="tickets")`` writes JSONL and snapshots it."""
    count = [0]

    def factory(store: Store, records: list[dict], name: str = "tickets") -> Snapshot:
        count[0] += 1
        path = tmp_path / f"{name}-{count[0]}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return create_snapshot(store, path, name, id_column="id")

    return factory
