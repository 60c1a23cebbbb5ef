"""Factories for data trees and tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_tree({"a.txt": b"...", "sub/b.bin": b"..."}, where="src")`` writes the files."""

    def factory(files: dict[str, bytes | str], where: str = "tree") -> Path:
        root = tmp_path / where
        root.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data.encode() if isinstance(data, str) else data)
        return root

    return factory
