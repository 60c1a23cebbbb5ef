"""What a command needs when it prints plain text: the store it acts on, JSON, and a table
written without rich. Kept light (no rich, no pydantic) so that ``runlock runs list`` starts
fast (bench/bench_cli.py); ``common`` re-exports the first three for every other command.

``print_table`` prints exactly what ``common.compact(common.table(None, head, rows))`` printed by
rich would, byte for byte (tests/cli/test_plain_table.py compares them over generated tables):
columns as wide as their widest cell, two spaces apart, a rule of ``─`` under the header. It does
so itself only where that layout is certain: output that is not a terminal (no colour), printable
ASCII cells, headers without markup, a table that fits the width rich would use. Anything else
(a terminal, a wide table that rich would fold, other characters) is handed to rich.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

try:  # typer >= 0.20 brings its own click (as cli/group.py)
    from typer._click.core import ParameterSource
except ImportError:  # pragma: no cover
    from click.core import ParameterSource

from runlock.cli.group import state
from runlock.errors import InvalidInput
from runlock.remote import credentials
from runlock.store import Store
from runlock.workspace import open_store, tidy

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


# Commands that only read: opening the store for them writes nothing. Every other command that
# opens the store tidies it first (crashed runs reaped, pending checkpoints signed: workspace.tidy).
READING = frozenset({"list", "show", "diff", "history", "log", "whoami", "lineage", "status", "resolve",
                     "explain", "plot", "export-public"})


def server_for(ctx: typer.Context) -> str | None:
    """The team server this command talks to: ``RUNLOCK_SERVER``, unless ``--store`` is on the
    command line (an explicit local store wins)."""
    if ctx.find_root().get_parameter_source("store") == ParameterSource.COMMANDLINE:
        return None
    return credentials.server_url()


def store(ctx: typer.Context) -> Store:
    """The store this command acts on, opened once per command (and tidied, unless it only reads).
    Under ``RUNLOCK_SERVER`` a command that is not served yet says so (exit 2) instead of
    silently using a store here (cli/service.py picks the server for those that are)."""
    st = state(ctx)
    if st._store is None:
        url = server_for(ctx)
        if url is not None:
            raise InvalidInput(f"`{ctx.command_path}` does not work against a runlock server yet "
                               f"(RUNLOCK_SERVER={url}).",
                               hint="Unset RUNLOCK_SERVER to use the store here, or pass --store PATH. "
                                    "docs/server.md lists the commands a server answers.")
        opened = open_store(st.store_path, token=st.token)
        ctx.find_root().call_on_close(opened.close)
        if ctx.info_name not in READING:
            tidy(opened)
        st._store = opened
    return st._store


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


class Styled(str):
    """A table cell in a colour or style (``print_table`` shows it plain where there is no colour)."""

    style: str

    def __new__(cls, text: str, style: str) -> Styled:
        s = super().__new__(cls, text)
        s.style = style
        return s


_console: Any = None     # the rich console on stdout, once made (common.console is this one)


def console() -> Any:
    """The rich ``Console`` on stdout, made (and rich imported) on first use."""
    global _console
    if _console is None:
        from rich.console import Console   # rich is what a plain command avoids loading
        _console = Console()
    return _console


def print_table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, no_wrap_first: bool = True) -> None:
    """A compact table on stdout (see the module's docstring). Cells are shown as they are (never
    read as markup); ``None`` is an empty cell; a ``Styled`` cell is coloured on a terminal."""
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    plain = _plain_lines(list(head), cells)
    if plain is not None:
        sys.stdout.write("".join(line + "\n" for line in plain))
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(title=None, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
              show_edge=False, collapse_padding=True)
    for c in head:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[Text(str(v), style=v.style) if isinstance(v, Styled) else Text("" if v is None else str(v))
                    for v in r])
    t.columns[0].no_wrap = no_wrap_first
    console().print(t)


def _plain_lines(head: list[str], rows: list[list[str]]) -> list[str] | None:
    """The table's lines as rich lays out a table that fits, or None where rich must do it."""
    if not head or _colour_wanted() or any(not _printable(h) or "[" in h or ":" in h for h in head):
        return None
    if any(len(r) != len(head) or not all(map(_printable, r)) for r in rows):
        return None
    last = len(head) - 1     # every column pads one space on its right, but the last
    widths = [max(len(c) for c in col) + (i != last) or 1 for i, col in enumerate(zip(head, *rows))]
    if sum(widths) + last > _console_width():
        return None          # rich would fold cells: leave it to rich
    rule = "─" * (sum(widths) + last)
    return [" ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head]] + [rule] + \
        [" ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _colour_wanted() -> bool:
    """Whether rich would treat stdout as a terminal (``Console.is_terminal``)."""
    if _console is not None:
        return _console.is_terminal
    env = os.environ
    if env.get("TTY_COMPATIBLE") == "1" or env.get("FORCE_COLOR") or "JUPYTER_COLUMNS" in env:
        return True
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:
        return True


def _console_width() -> int:
    """The width rich gives a console that is not a terminal (``Console.size``), or the width of
    the console already made (a test may set it)."""
    if _console is not None:
        return _console.width
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80
