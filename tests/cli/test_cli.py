"""The CLI, in process: every command has help, prints JSON on --json, and turns user errors
into one line and a non-zero exit without a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.store import Store

runner = CliRunner()


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):  # a group (typer may bring its own click)
            out += all_commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", all_commands(get_command(app)), ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    cmd = get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    assert (cmd.help or "").strip(), f"`runlock {' '.join(path)}` has no help text"
    result = invoke(*path, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_init_then_runs_list_show_diff_json(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["store"] == str(tmp_path / ".runlock")
    store = runlock.open_store(tmp_path)
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as a:
        a.log({"loss": 1.0}, step=0)
    with runlock.start_run(project="p", config={"lr": 0.3}, store=store) as b:
        b.log({"loss": 0.5}, step=0)
    listed = json.loads(invoke("--store", str(tmp_path), "runs", "list", "--json").output)
    assert [r["id"] for r in listed] == [b.id, a.id]
    shown = json.loads(invoke("--store", str(tmp_path), "runs", "show", a.id, "--json").output)
    assert shown["lock"]["config"] == {"lr": 0.1} and shown["run"]["status"] == "finished"
    diff = json.loads(invoke("--store", str(tmp_path), "runs", "diff", a.id, b.id, "--json").output)
    assert diff["changes"]["config"] == [{"field": "config.lr", "a": 0.1, "b": 0.3}]
    table = invoke("--store", str(tmp_path), "runs", "diff", a.id, b.id)
    assert "config.lr" in table.output


def test_fsck_reports_a_corrupt_object_and_exits_non_zero(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights")
    with runlock.start_run(project="p", store=store) as run:
        art = run.log_artifact(f, name="m")
    ok = invoke("--store", str(store.root), "fsck", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    path = store.objects.path_of(art.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"weightz")
    bad = invoke("--store", str(store.root), "fsck", "--json")
    assert bad.exit_code == 1
    problems = json.loads(bad.output)["problems"]
    assert problems == [{"id": art.digest, "problem": "corrupt", "detail": problems[0]["detail"]}]
    path.unlink()
    gone = json.loads(invoke("--store", str(store.root), "fsck", "--json").output)
    assert gone["referenced_missing"][0]["id"] == art.digest


@pytest.mark.parametrize("args, needle", [
    (("runs", "list"), "runlock init"),
    (("runs", "show", "01ABCDEFGH"), "runlock init"),
])
def test_missing_store_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         args: tuple[str, ...], needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    result = invoke(*args)
    assert result.exit_code != 0
    assert needle in result.output and "Traceback" not in result.output


def test_unknown_run_is_one_clear_line_and_store_unchanged(store: Store) -> None:
    before = sorted(p.name for p in store.root.iterdir())
    result = invoke("--store", str(store.root), "runs", "show", "01ZZZZZZZZZZ")
    assert result.exit_code == 1
    assert "No run '01ZZZZZZZZZZ'" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in store.root.iterdir()) == before


def test_init_on_a_path_that_does_not_exist(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "is not a directory" in result.output
    assert not (tmp_path / "nope").exists()


def test_version() -> None:
    assert invoke("--version").output.strip() == f"runlock {runlock.__version__}"


def test_fsck_names_a_lost_data_file_inside_a_snapshot(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    (data / "b.txt").write_text("beta\n")
    snap = runlock.snapshot(data, name="files", store=store)
    lost = next(e for e in snap.entries if e["path"] == "b.txt")["sha256"]
    store.objects.delete(lost)
    report = json.loads(invoke("--store", str(store.root), "fsck", "--json").output)
    assert report["ok"] is False
    assert report["referenced_missing"] == [{"id": lost, "referenced_by": f"b.txt in {snap.ref}"}]


def test_progress_bar_is_off_unless_wanted_and_ticks_when_on() -> None:
    from runlock.cli import common

    with common.progress("x", False) as tick:
        assert tick is None
    with common.progress("hashing", True, unit="bytes") as tick:
        tick(5, 10, note="1/2 files")
        tick(10, 10, description="done")


def test_error_text_in_brackets_is_printed_as_written() -> None:
    """An install hint like runlock[plot] must not be eaten as console markup."""
    import typer

    from runlock.cli import common
    from runlock.errors import InvalidInput

    demo = typer.Typer(cls=common.RunlockGroup)

    @demo.command()
    def fail() -> None:
        raise InvalidInput("Plotting needs matplotlib.", hint="Install it with `pip install 'runlock[plot]'`.")

    @demo.command()
    def other() -> None: ...

    result = runner.invoke(demo, ["fail"], catch_exceptions=False)
    assert result.exit_code == 2 and "runlock[plot]" in result.output


def test_table_cells_are_shown_as_written() -> None:
    from rich.console import Console

    from runlock.cli import common

    out = Console(width=120, record=True)
    out.print(common.table("t", ["a", "b"], [("[/]", "runlock[plot]"), ("[bold]x", common.styled("no", "red"))]))
    text = out.export_text()
    assert "[/]" in text and "runlock[plot]" in text and "[bold]x" in text and "no" in text


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer may bring its own click)
            out += leaf_commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


# demo, run and probe run programs; ui and server take no reference and serve until stopped
# (tests/ui and tests/server start them on a free port)
@pytest.mark.parametrize("path, cmd", [(p, c) for p, c in leaf_commands(get_command(app))
                                       if p[0] not in ("demo", "run", "probe", "ui", "server")], ids=lambda x: " ".join(x)
                         if isinstance(x, tuple) else "")
def test_every_command_answers_a_bogus_reference_without_a_traceback(store: Store, path: tuple[str, ...],
                                                                     cmd: click.Command) -> None:
    args = [a for p in cmd.params if type(p).__name__ == "Argument" or isinstance(p, click.Argument) for a in ["no-such-thing"] * max(p.nargs, 1)]
    result = runner.invoke(app, ["--store", str(store.root), *path, *args])
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_runs_show_prints_config_and_summary_with_brackets_as_written(store: Store) -> None:
    with runlock.start_run(project="p", name="weird", config={"layers": [1, 2], "tag": "[/]", "opt": {"lr": 1}},
                           store=store) as run:
        run.set_summary({"eval/f1": 0.5, "note": "[bold]x"})
    result = runner.invoke(app, ["--store", str(store.root), "runs", "show", run.id], catch_exceptions=False,
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("p/weird", "tag = [/]", "layers = [1, 2]", "opt = {1 keys}", "note = [bold]x", "eval/f1 = 0.5"):
        assert text in result.output, text
