"""Every command, driven with generated bad arguments (hypothesis), in process: never a traceback,
a failure is one line on stderr (``error: ...``), and the store is identical before and after.

The commands are found by walking the command tree of the app itself, so a new command is fuzzed
without being listed here. Positional arguments are always bad (never an existing file, never a
valid name), so no command can legitimately succeed in changing the store; options get bad values
or are left out. Commands that start processes or servers (run, probe, demo, the reruns, repro, ui,
server), reach the network (login), create or upgrade a store (init, migrate) or need no argument
to write (audit checkpoint) are left out; ``gc`` never gets ``--yes``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from runlock.cli.main import app
from tests.cli.test_bad_input import BIG, store_digest, world  # noqa: F401 (world: the store fixture)

runner = CliRunner()
SKIP = {"run", "probe", "demo", "rerun", "variance", "verify", "repro", "pipeline resume", "pipeline verify",
        "ui", "server", "login", "init", "migrate", "audit checkpoint"}   # a command, or a whole group
EXAMPLES = int(os.environ.get("RUNLOCK_FUZZ_EXAMPLES", "8"))   # per command; 8: under a minute for all

NASTY = ["", " ", "\x00", "a\x00b", "\n", "\x1e", "\u2028", "\x1b[31mred", "\t-", "\udcff", "é\x00",
         "../../no-such-thing", "/proc/runlock-fuzz",
         "/no/such/dir/file", BIG, "-" + BIG, "1e309", "nan", "inf", "%", "_" * 26, "%%%%%%", "*",
         f"ds:t@v{BIG}", f"split:t@v{BIG}", f"model:mm@v{BIG}", "model:mm@", "run:%%%%%%", "art:sha256:zz",
         "sha256:" + "0" * 64, "[" * 3000, "{" * 3000, "(" * 3000, "a" * 5000, "a=" + "[" * 3000,
         ".".join(["a"] * 3000) + "=1", "x" * 300, "a/../../b", ".runlock", "'; DROP TABLE runs; --"]


def leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name in group.list_commands(None):
        cmd = group.commands[name]
        if " ".join((*prefix, name)) in SKIP:
            continue
        if hasattr(cmd, "commands"):
            out += leaf_commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


COMMANDS = leaf_commands(get_command(app))


def is_argument(p: Any) -> bool:
    return "Argument" in type(p).__name__


@st.composite
def bad_argv(draw: st.DrawFn, cmd: Any, files: dict[str, str]) -> list[str]:
    positional = st.one_of(st.sampled_from(NASTY), st.text(max_size=20).map(lambda s: "%" + s))
    valued = st.one_of(positional, st.sampled_from([files["binary"], files["folder"], files["deep"], "0", "-1"]),
                       st.integers(min_value=-(2**70), max_value=2**70).map(str))
    options: list[str] = []
    args: list[str] = []
    for p in cmd.params:
        if is_argument(p):
            if p.required or draw(st.booleans()):
                n = p.nargs if p.nargs > 0 else draw(st.integers(1, 3))
                args += [draw(positional) for _ in range(n)]
        elif p.name in ("yes", "help") or p.hidden:
            continue
        elif getattr(p, "is_flag", False):
            if draw(st.booleans()):
                options.append(p.opts[0])
        elif p.required or draw(st.integers(0, 2)) == 0:
            options += [p.opts[0], draw(valued)]
    return [*options, "--", *args] if args else options


@pytest.fixture(scope="module")
def in_empty_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    here, folder = Path.cwd(), tmp_path_factory.mktemp("fuzz-cwd")
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(here)


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_bad_arguments_never_trace_back_and_never_change_the_store(world: dict, in_empty_folder: Path,  # noqa: F811
                                                                   path: tuple[str, ...], cmd: Any) -> None:
    files = {"binary": str(world["base"] / "binary.yaml"), "folder": str(world["base"] / "folder"),
             "deep": str(world["base"] / "deep.json")}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=bad_argv(cmd, files))
    def drive(argv: list[str]) -> None:
        before = store_digest(world["root"])
        result = runner.invoke(app, ["--store", str(world["root"]), *path, *argv])
        shown = f"runlock {' '.join(path)} {argv!r}:\n{result.output[-2000:]}"
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{shown}\n{result.exception!r}"
        assert "Traceback" not in result.output, shown
        if result.exit_code != 0:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), shown
        assert store_digest(world["root"]) == before, f"{shown}\nchanged the store"

    drive()
