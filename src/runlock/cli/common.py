"""What every command shares: the store it acts on, JSON or table output, and clean errors.

A command opens the store with ``store(ctx)``, calls one library function, and prints its result
with ``emit``; a ``RunlockError`` anywhere becomes one line on stderr and a non-zero exit (see
``RunlockGroup``), never a traceback.

A command that writes a file the user names (``-o FILE``) checks it with ``output_file`` before it
computes anything, and writes it with ``write_output``: an existing file is replaced only with
``--force`` (``FORCE_OPTION``), a folder never, and a half-written file is never left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from runlock.cli.group import CliState, RunlockGroup, state  # noqa: F401 (re-exported: the root's light pieces)
from runlock.cli import plain
from runlock.cli.plain import JSON_OPTION, print_json, store, to_jsonable  # noqa: F401 (re-exported)
from runlock.errors import InvalidInput

console = plain.console()
err_console = Console(stderr=True)

PROGRESS_OPTION = typer.Option(None, "--progress/--no-progress",
                               help="Show a progress bar on stderr (default: when it is a terminal).")

FORCE_OPTION = typer.Option(False, "--force", help="Replace the output file if it exists.")

Tick = Callable[..., None]  # tick(done, total, description=None, note=None)


def output_file(path: str | Path | None, force: bool, *, option: str = "--output") -> Path | None:
    """``path`` if a command may write it: not a folder, its folder exists, and it does not exist
    yet unless ``force``. Call it before the work, so that a refusal costs nothing."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise InvalidInput(f"{option} {p} is a folder; give the name of a file to write.")
    if not p.parent.is_dir():
        raise InvalidInput(f"{option} {p}: the folder {p.parent} does not exist.", hint="Create it first.")
    if (p.exists() or p.is_symlink()) and not force:
        raise InvalidInput(f"{p} already exists.", hint="Pass --force to replace it, or pick another name.")
    return p


def write_output(path: Path, data: str | bytes, force: bool, *, option: str = "--output") -> None:
    """Write ``data`` to ``path`` as ``open_output`` does."""
    with open_output(path, force, option=option, binary=isinstance(data, bytes)) as f:
        f.write(data)


@contextmanager
def open_output(path: Path, force: bool, *, option: str = "--output", binary: bool = False) -> Iterator[Any]:
    """A file to write ``path`` through (checked as by ``output_file``): a temporary file in the
    same folder, renamed into place only when the body ends without an error."""
    output_file(path, force, option=option)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InvalidInput(f"Cannot write {path}: {e.strerror}.") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise InvalidInput(f"Cannot write {path}: {e.strerror}.") from None
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def progress(label: str, wanted: bool | None = None, *, unit: str = "items",
             until_done: bool = False) -> Iterator[Tick | None]:
    """A progress bar on stderr, or None when not wanted (default: only on a terminal).
    Yields ``tick(done, total, description=None, note=None)``; ``unit="bytes"`` shows sizes.
    ``until_done``: the bar goes away once ``done`` reaches ``total`` (a rerun's preparation,
    before the command's own output)."""
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
            if until_done and total is not None and done >= total:
                bar.stop()

        yield tick


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
