"""What starting runlock loads, checked in fresh processes: `import runlock`, `runlock --version`
and `runlock --help` load no heavy library and no command module; a command loads what it uses
and not alembic (only migrating needs it), OmegaConf (only resolving a config) or the data
science stack. Speed itself is measured in bench/bench_cli.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

import runlock
from runlock.cli.main import ENTRIES, app
from runlock.store import Store, shipped_heads

HEAVY = ("alembic", "omegaconf", "pandas", "pyarrow", "torch", "matplotlib")

LOADED = """
import contextlib, io, json, sys
argv = json.loads(sys.argv[1])
out = io.StringIO()
if argv is None:
    import runlock
else:
    sys.argv = ["runlock", *argv]
    from runlock.cli.entry import main
    with contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as e:
            assert not e.code, e.code
print(json.dumps({"modules": sorted(sys.modules), "out": out.getvalue()}))
"""


def loaded(argv: list[str] | None) -> tuple[set[str], str]:
    """The modules loaded after ``import runlock`` (argv None) or after running ``runlock ARGV``."""
    done = subprocess.run([sys.executable, "-c", LOADED, json.dumps(argv)], capture_output=True, text=True,
                          check=True, env={**{k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")},
                                           "COLUMNS": "100"})
    found = json.loads(done.stdout)
    return set(found["modules"]), found["out"]


def roots(modules: set[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules}


@pytest.mark.parametrize("argv", [None, ["--help"], ["--version"]], ids=["import runlock", "--help", "--version"])
def test_starting_loads_no_heavy_library_and_no_command(argv: list[str] | None) -> None:
    modules, _ = loaded(argv)
    assert not roots(modules) & {*HEAVY, "numpy", "sqlalchemy", "rich", "pydantic"}
    assert not [m for m in modules if m.startswith("runlock.") and m not in
                ("runlock._version", "runlock.cli", "runlock.cli.entry", "runlock.cli.main", "runlock.cli.group", "runlock.cli.lazy",
                 "runlock.errors")]


def test_version_answers_without_loading_typer() -> None:
    modules, out = loaded(["--version"])
    assert out == f"runlock {runlock.__version__}\n"
    assert "typer" not in roots(modules)


def test_help_lists_every_command_with_its_line() -> None:
    modules, out = loaded(["--help"])
    assert "typer" in roots(modules)
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert set(ENTRIES) <= listed
    for entry in ENTRIES.values():
        assert entry.help.split()[0] in out


def test_no_arguments_prints_the_help_and_exits_2() -> None:
    result = CliRunner().invoke(app, [], prog_name="runlock")
    assert result.exit_code == 2
    assert "Usage: runlock" in result.output and ENTRIES["runs"].help in result.output


def test_a_command_loads_what_it_uses_and_no_heavy_library(store: Store) -> None:
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as run:
        run.log({"loss": 1.0}, step=0)
    modules, out = loaded(["--store", str(store.root), "runs", "list"])
    assert run.id[:8] in out
    assert not roots(modules) & {*HEAVY, "numpy"}
    assert "runlock.cli.runs" in modules and "runlock.cli.split" not in modules
    assert "sqlalchemy.dialects.postgresql" not in modules      # a SQLite store needs no PostgreSQL dialect


def test_the_schema_check_reads_the_heads_alembic_would() -> None:
    """Opening a store checks its schema without alembic, from the migration scripts' own lines."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(runlock.store.__file__).parent / "migrations"))
    assert shipped_heads() == set(ScriptDirectory.from_config(cfg).get_heads())
    assert len(shipped_heads()) > 1   # one head per feature branch: the parse must find them all


def test_every_public_name_resolves_and_unknown_names_do_not() -> None:
    for name in runlock.__all__:
        assert getattr(runlock, name) is not None, name
    assert callable(runlock.start_run) and runlock.verify.__name__ == "runlock.verify"
    assert not hasattr(runlock, "no_such_thing")
    with pytest.raises(AttributeError):
        runlock.__no_such_dunder__  # noqa: B018
