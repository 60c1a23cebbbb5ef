"""What the root of the command tree needs, kept light so that ``runlock --help`` loads nothing else:
the state of one invocation (``--store``, ``--token``) and the group class that turns every
``RunlockError`` raised below it into one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup

from runlock.errors import RunlockError


@dataclass
class CliState:
    store_path: str | None = None
    token: str | None = None
    _store: Any = None  # the runlock.store.Store that common.store(ctx) opens once per command


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


class RunlockGroup(TyperGroup):
    """Turns every RunlockError raised below the root into one clean line and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunlockError as e:
            from rich.console import Console  # loaded by every command already; not by --help
            from rich.markup import escape

            Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        _untyped_flags(params)
        return params

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> tuple:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            _untype_tree(cmd, ctx)
        return name, cmd, rest


def _untyped_flags(params: Iterable[Any]) -> None:
    """typer's help prints a flag's type as ``<bool>``; a flag takes no value, so show none."""
    for p in params:
        if p is not None and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


def _untype_tree(cmd: Any, ctx: typer.Context) -> None:
    _untyped_flags([*cmd.params, cmd.get_help_option(ctx)])
    for sub in getattr(cmd, "commands", {}).values():
        _untype_tree(sub, ctx)
