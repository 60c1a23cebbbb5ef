"""A command group whose commands are imported when one of them runs (or help lists them), never
before, as the root does for whole groups (``main.py``): ``runlock runs list`` loads what listing
needs and not what ``runs show`` does (bench/bench_cli.py, tests/test_imports.py).

    app = typer.Typer(cls=lazy.group({"list": ("runs_list", "list_"), ...}), help=...)

Each command is a function in ``runlock.cli.<module>``, registered under its name exactly as
``@app.command(name)`` would register it: its arguments, options and help are its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer

from runlock.cli.group import RunlockGroup


class LazyCommands(MutableMapping):
    """Commands by name, each built on first use from ``table`` (name -> (module, function))."""

    def __init__(self, table: dict[str, tuple[str, str]], built: dict[str, Any]) -> None:
        self.table, self.built = table, dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            module, attribute = self.table[name]    # KeyError for an unknown name, as a dict
            fn = getattr(importlib.import_module(f"runlock.cli.{module}"), attribute)
            one = typer.Typer(add_completion=False)
            one.command(name)(fn)
            self.built[name] = typer.main.get_command(one)
        return self.built[name]

    def __setitem__(self, name: str, cmd: Any) -> None:
        self.built[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.table
        yield from (n for n in self.built if n not in self.table)

    def __len__(self) -> int:
        return len(self.table) + sum(n not in self.table for n in self.built)


def group(table: dict[str, tuple[str, str]]) -> type[RunlockGroup]:
    """A group class (for ``typer.Typer(cls=...)``) whose commands are those of ``table``."""

    class LazyGroup(RunlockGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = LazyCommands(table, self.commands)

        def list_commands(self, ctx: typer.Context) -> list[str]:
            return list(self.commands)

    return LazyGroup
