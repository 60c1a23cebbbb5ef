"""A command group whose commands are imported when one of them runs (or help lists them), never
before, as the root does for whole groups (``main.py``): ``runlock runs list`` loads what listing
needs and not what ``runs show`` does (bench/bench_cli.py, tests/test_imports.py).

    app = typer.Typer(cls=lazy.group({"list": ("runs_list", "list_"), ...}), help=...)

Each command is a function in ``runlock.cli.<module>``, registered under its name exactly as
``@app.command(name)`` would register it: its arguments, options and help are its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import typer

from runlock.cli.group import RunlockGroup


class LazyCommands(MutableMapping):
    """Commands by name, each built on first use by ``build(name)``; ``names`` are known up front.
    The root (``main.py``) and every lazy group share it."""

    def __init__(self, names: Iterable[str], build: Callable[[str], Any], built: dict[str, Any]) -> None:
        self.names, self.build, self.built = list(names), build, dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in self.names:
                raise KeyError(name)
            self.built[name] = self.build(name)
        return self.built[name]

    def __setitem__(self, name: str, cmd: Any) -> None:
        self.built[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.names
        yield from (n for n in self.built if n not in self.names)

    def __len__(self) -> int:
        return len(self.names) + sum(n not in self.names for n in self.built)


def _command(table: dict[str, tuple[str, str]], name: str) -> Any:
    module, attribute = table[name]
    fn = getattr(importlib.import_module(f"runlock.cli.{module}"), attribute)
    one = typer.Typer(add_completion=False)
    one.command(name)(fn)
    return typer.main.get_command(one)


def group(table: dict[str, tuple[str, str]]) -> type[RunlockGroup]:
    """A group class (for ``typer.Typer(cls=...)``) whose commands are those of ``table``."""

    class LazyGroup(RunlockGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = LazyCommands(table, lambda name: _command(table, name), self.commands)

        def list_commands(self, ctx: typer.Context) -> list[str]:
            return list(self.commands)

    return LazyGroup
