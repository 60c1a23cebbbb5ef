"""``runlock runs``: list (with filters), show, diff, compare, tag, note and delete recorded runs.

Each command lives in the module that holds what it needs, and is imported only when it runs
(``cli/lazy.py``): ``runs list`` loads the query and a plain table, not the artifacts, lineage
and rich trees that ``runs show`` uses. What the commands share is here, kept light.
"""

from __future__ import annotations

import typer

from runlock.cli import lazy

COMMANDS = {
    "list": ("runs_list", "list_"),
    "show": ("runs_show", "show"),
    "diff": ("runs_compare", "diff"),
    "compare": ("runs_compare", "compare"),
    "tag": ("runs_annotate", "tag"),
    "note": ("runs_annotate", "note"),
    "delete": ("runs_annotate", "delete"),
}

app = typer.Typer(cls=lazy.group(COMMANDS), help="Inspect recorded runs.", no_args_is_help=True)


@app.callback()
def runs() -> None:
    """Inspect recorded runs."""     # typer builds a group from a callback or commands: these come later

RUN_ARG = typer.Argument(..., help="Run id, or a unique prefix of it (at least 6 characters).")


def hex_prefix(content_id: str | None, n: int = 8) -> str:
    """The first hex characters of a ``sha256:…`` id: enough to tell recipes apart at a glance."""
    return (content_id or "").partition(":")[2][:n] or (content_id or "")[:n]


def colour(status: str) -> str:
    return {"finished": "green", "running": "yellow", "failed": "red", "crashed": "red"}.get(status, "white")


def num(value: object) -> str:
    """A number for a table: 6 significant digits (the exact value is in --json)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
