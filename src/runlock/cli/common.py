"""What every command shares: the store it acts on, JSON or table output, and clean errors.

A command opens the store with ``store(ctx)``, calls one library function, and prints its result
with ``emit``; a ``RunlockError`` anywhere becomes one line on stderr and a non-zero exit (see
``RunlockGroup``), never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from runlock.cli.group import CliState, RunlockGroup, state  # noqa: F401 (re-exported: the root's light pieces)
from runlock.store import Store
from runlock.workspace import open_store

console = Console()
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
PROGRESS_OPTION = typer.Option(None, "--progress/--no-progress",
                               help="Show a progress bar on stderr (default: when it is a terminal).")

Tick = Callable[..., None]  # tick(done, total, description=None, note=None)


def store(ctx: typer.Context) -> Store:
    """The store this command acts on, opened once per command."""
    st = state(ctx)
    if st._store is None:
        st._store = open_store(st.store_path, token=st.token)
        ctx.find_root().call_on_close(st._store.close)
    return st._store


@contextmanager
def progress(label: str, wanted: bool | None = None, *, unit: str = "items") -> Iterator[Tick | None]:
    """A progress bar on stderr, or None when not wanted (default: only on a terminal).
    Yields ``tick(done, total, description=None, note=None)``; ``unit="bytes"`` shows sizes."""
    if not (wanted if wanted is not None else err_console.is_terminal):
        yield None
        return
    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), counter, TextColumn("{task.fields[note]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None, note="")

        def tick(done: int, total: int | None, description: str | None = None, note: str | None = None) -> None:
            extra = {k: v for k, v in (("description", description), ("note", note)) if v is not None}
            bar.update(task, completed=done, total=total, **extra)

        yield tick


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_jsonable(to_dict() if callable(to_dict) else dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def emit(value: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``value`` as JSON, or hand it to ``render`` for people."""
    if as_json:
        print_json(value)
    else:
        render(value)


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    """A table of values shown exactly as they are (user data is never read as markup); a cell
    that should be coloured is passed as ``styled(text, style)``."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in r])
    return t


def styled(text: str, style: str) -> Text:
    """A table cell in a colour or style."""
    return Text(text, style=style)


def compact(t: Table) -> Table:
    """A table without vertical rules, as gh and uv print them (two spaces between columns), so
    that more fits an 80-column terminal."""
    t.box, t.pad_edge, t.show_edge, t.collapse_padding = box.SIMPLE_HEAD, False, False, True
    return t


def short(value: str | None, n: int = 19) -> str:
    """A content id shortened for a table (full ids are in --json)."""
    if not value:
        return ""
    return value if len(value) <= n else value[:n] + "…"
