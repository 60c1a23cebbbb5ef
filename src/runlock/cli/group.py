"""What the root of the command tree needs, kept light so that ``runlock --help`` loads nothing else:
the state of one invocation (``--store``, ``--token``) and the group class that turns every
``RunlockError`` raised below it into one line on stderr and an exit code, never a traceback.

Usage errors (a missing argument, an unknown option, a value of the wrong type) are one line too,
``error: ... See `runlock CMD --help`.``, with exit status 2. Every number a command takes is
checked before the command runs: an integer must fit a signed 64-bit value (what both databases
store), a decimal must be finite, so ``--limit 99999999999999999999`` or ``--rtol inf`` is a usage
error, never an overflow deep inside a query or a silent "everything matches". An ``OSError`` that
names a file and reaches the surface (a path the user gave that cannot be read or written) is one
line naming the file, not a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import math
import re

import typer
from typer._coercion import build_runtime_param
from typer.core import TyperGroup

from runlock.errors import RunlockError

try:  # typer >= 0.20 brings its own click
    from typer._click.exceptions import BadParameter, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import BadParameter, NoArgsIsHelpError, UsageError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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
            fail(str(e), e.exit_code)
        except UsageError as e:
            if isinstance(e, NoArgsIsHelpError):
                raise
            fail(usage_line(e), e.exit_code)
        except OSError as e:
            if e.filename is None:
                raise
            fail(f"Cannot use {e.filename}: {e.strerror or e}.", 1)
        except ValueError as e:   # what os.* raise for a path the user typed with a NUL byte in it
            if "null byte" not in str(e):
                raise
            fail("A path holds a NUL byte (\\x00), which no file name can hold.", 2)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as e:  # an unknown option of the root itself
            if isinstance(e, NoArgsIsHelpError):
                raise
            fail(usage_line(e), e.exit_code)

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        _untyped_flags(params)
        _plain_coercion(params)
        return params

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> tuple:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            _untype_tree(cmd, ctx)
        return name, cmd, rest


def fail(message: str, exit_code: int) -> None:
    """One line on stderr, then exit with ``exit_code``. User text inside the message can hold a
    line break, another control character or a lone surrogate (an undecodable byte of argv): each
    is shown escaped (``\\n``, ``\\x1e``, ``\\udcff``)."""
    from rich.console import Console  # loaded by every command already; not by --help
    from rich.markup import escape

    message = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code) from None


def usage_line(e: Any) -> str:
    """A usage error as one sentence and where to read more."""
    message = " ".join(e.format_message().split())
    if len(message) > 300:
        message = message[:300] + "…"
    where = f" See `{e.ctx.command_path} --help`." if e.ctx is not None else ""
    return f"{message.rstrip('.')}.{where}"


def _checked_numbers(params: Iterable[Any]) -> None:
    """Give every parameter the check that its numbers fit (see the module's docstring)."""
    for p in params:
        if p is None or getattr(p, "_runlock_numbers", False) or not hasattr(p, "callback"):
            continue
        p.callback = _number_check(p.callback)
        p._runlock_numbers = True


def _number_check(then: Any) -> Any:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, bool):
                continue
            if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
                raise BadParameter(f"{v} is out of range; use a whole number from {INT64_MIN} to {INT64_MAX}.",
                                   ctx=ctx, param=param)
            if isinstance(v, float) and not math.isfinite(v):
                raise BadParameter(f"{v} is not a finite number.", ctx=ctx, param=param)
        return then(ctx, param, value) if then is not None else value

    return check


def _untyped_flags(params: Iterable[Any]) -> None:
    """typer's help prints a flag's type as ``<bool>``; a flag takes no value, so show none."""
    for p in params:
        if p is not None and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


def _untype_tree(cmd: Any, ctx: typer.Context) -> None:
    _untyped_flags([*cmd.params, cmd.get_help_option(ctx)])
    _checked_numbers(cmd.params)
    _plain_coercion([*cmd.params, cmd.get_help_option(ctx)])
    commands = getattr(cmd, "commands", {})
    for sub in getattr(commands, "built", commands).values():   # a lazy group: those built (cli/lazy.py)
        _untype_tree(sub, ctx)


# typer 0.29 coerces every option value through a pydantic TypeAdapter, and importing pydantic to
# build the first one costs a command about as much as importing typer itself. The values nearly
# every command gets (None, a str, a decimal int or float, a list of str) are coerced here the way
# typer's adapter would; anything else (bytes, a bound, a parser, a choice, a path, an odd number
# such as "1_000" or " 5") goes to typer's own coercion, built on first use, errors included.
_INT = re.compile(r"0|-?[1-9][0-9]{0,17}")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?")


class _PlainCoercion:
    """A stand-in for typer's runtime coercion of one parameter (its ``coerce`` contract)."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self.typer_own: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        annotation = self.descriptor.annotation
        if multi and isinstance(value, (list, tuple)) and annotation == list[str] \
                and all(type(v) is str for v in value):
            return list(value)
        if not multi:
            if annotation is str and type(value) is str:
                return value
            if annotation is int and (type(value) is int or (type(value) is str and _INT.fullmatch(value))):
                return int(value)
            if annotation is float and (type(value) is float or (type(value) is str and _FLOAT.fullmatch(value))):
                return float(value)
        if self.typer_own is None:
            self.typer_own = build_runtime_param(self.descriptor)
        return self.typer_own.coerce(value, param=param, ctx=ctx)


def _plain_coercion(params: Iterable[Any]) -> None:
    for p in params:
        d = getattr(p, "type_descriptor", None)
        if d is None or getattr(p, "_runtime_param", False) is not None or d.file_annotation is not None:
            continue    # not typer's parameter, or its coercion already built
        info = d.parameter_info
        if info.parser is None and info.min is None and info.max is None and not info.clamp \
                and (d.annotation in (str, int, float, bool) or d.annotation == list[str]):
            p._runtime_param = _PlainCoercion(d)
