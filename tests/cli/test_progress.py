"""Long commands report progress through a callback (the domain never prints); the CLI draws a
bar on a terminal, and none under --json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli import common
from runlock.cli.main import app
from runlock.data.snapshot import create_snapshot
from runlock.data.verify import verify
from runlock.store import Store


def tree(root: Path, n: int) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"f{i}.txt").write_text(f"file {i}\n")
    return root


def test_data_verify_reports_each_object_and_each_file(store: Store, tmp_path: Path) -> None:
    data = tree(tmp_path / "d", 5)
    create_snapshot(store, data, "d")
    seen: list[tuple[int, int]] = []
    assert verify(store, "ds:d@v1", on_progress=lambda done, total: seen.append((done, total))).ok
    assert seen == [(i, 6) for i in range(1, 7)]          # the manifest and five files
    seen.clear()
    assert verify(store, "ds:d@v1", path=data, on_progress=lambda done, total: seen.append((done, total))).ok
    assert seen[-1] == (5, 5) and len(seen) == 5


def test_no_bar_under_json_even_on_a_terminal(store: Store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    create_snapshot(store, tree(tmp_path / "d", 3), "d")
    opened: list[object] = []
    real = common.progress

    def spy(label: str, wanted: bool | None = None, **kw):  # noqa: ANN003, ANN202
        opened.append(wanted)
        return real(label, wanted, **kw)

    monkeypatch.setattr(common, "progress", spy)
    out = CliRunner().invoke(app, ["--store", str(store.root), "data", "verify", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["ok"]
    assert opened == [False]
    CliRunner().invoke(app, ["--store", str(store.root), "data", "verify"])
    assert opened == [False, None]                      # default: a bar when stderr is a terminal
