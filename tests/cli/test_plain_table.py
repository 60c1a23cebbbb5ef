"""`runs list` prints its table without rich (cli/plain.py): byte for byte what rich printed, and
neither rich nor pydantic is loaded to list runs (they cost as much as the rest of the command)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

import runlock
from runlock.cli import plain
from runlock.store import Store

CELL = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=14) | \
    st.text(alphabet="ab é中\t:[", max_size=5) | st.none() | st.integers(-10**6, 10**6)
HEAD = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=10)


def by_rich(head: list[str], rows: list[list], width: int) -> str:
    """What `common.compact(common.table(None, head, rows))` printed through rich."""
    out = io.StringIO()
    t = Table(title=None, title_justify="left", header_style="bold")
    for c in head:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[Text("" if v is None else str(v)) for v in r])
    t.box, t.pad_edge, t.show_edge, t.collapse_padding = box.SIMPLE_HEAD, False, False, True
    t.columns[0].no_wrap = True
    Console(file=out, width=width).print(t)
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(HEAD, min_size=n, max_size=n),
                                                     st.lists(st.lists(CELL, min_size=n, max_size=n), max_size=5))),
       st.integers(10, 160))
def test_plain_table_is_what_rich_prints(table: tuple, width: int) -> None:
    head, rows = table
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plain, "_console", None)
        mp.setenv("COLUMNS", str(width))
        for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            mp.delenv(name, raising=False)
        with contextlib.redirect_stdout(out):
            plain.print_table(head, rows)
    assert out.getvalue() == by_rich(head, rows, width)


def test_the_plain_path_is_taken_for_a_table_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plain, "_console", None)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert plain._plain_lines(["run", "step"], [["01ABCDEF", "4"]]) == \
        ["run       step", "──────────────", "01ABCDEF  4   "]
    assert plain._plain_lines(["run"], [["x" * 81]]) is None          # rich folds it: rich prints it
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain._plain_lines(["run"], [["x"]]) is None               # colour: rich prints it


LOADED = """
import contextlib, io, json, sys
sys.argv = ["runlock", "--store", sys.argv[1], "runs", "list", "--limit", "5", "--where", "config.lr > 0"]
from runlock.cli.entry import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main()
    except SystemExit as e:
        assert not e.code, e.code
print(json.dumps({"modules": sorted(sys.modules), "out": out.getvalue()}))
"""


def test_runs_list_loads_neither_rich_nor_pydantic_nor_other_commands(store: Store) -> None:
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as run:
        run.log({"loss": 1.0}, step=0)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}, "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", LOADED, str(store.root)], capture_output=True, text=True,
                          check=True, env=env)
    found = json.loads(done.stdout)
    assert run.id[:8] in found["out"] and "config.lr" in found["out"]
    roots = {m.partition(".")[0] for m in found["modules"]}
    assert not roots & {"rich", "pydantic", "ulid"}
    assert not {"runlock.cli.common", "runlock.cli.runs_show", "runlock.cli.runs_compare", "runlock.artifacts",
                "runlock.data"} & set(found["modules"])
