"""`runlock runs` as a person sees it: short run ids that fit 80 columns (and are accepted back),
metrics in `show`, a compare that shows what differs, and tag / note / delete."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock.cli import common
from runlock.cli.main import app
from runlock.store import Store
from runlock.tracking import records

runner = CliRunner()


def cli(store: Store, *args: str, columns: int = 80):  # noqa: ANN201
    """Run a command as on a terminal ``columns`` wide (the console reads COLUMNS when created)."""
    old = common.console.width
    common.console.width = columns
    try:
        return runner.invoke(app, ["--store", str(store.root), *args])
    finally:
        common.console.width = old


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def trained(store: Store, name: str, lr: float, losses: list[float], **kw) -> str:  # noqa: ANN003
    args = {f"arg_{i:03d}": i for i in range(150)}
    args["learning_rate"] = lr
    with runlock.start_run(project="support-bot", name=name, store=store,
                           config={"seed": 1, "training_args": args}, **kw) as run:
        for step, loss in enumerate(losses):
            run.log({"train/loss": loss}, step=step)
        run.set_summary({"eval/f1": 0.5 + lr})
    return run.id


def test_runs_list_fits_80_columns_with_short_ids_and_wide_shows_them_whole(store: Store) -> None:
    ids = [trained(store, f"lora-r{i}", 0.1, [1.0]) for i in range(3)]
    out = cli(store, "runs", "list")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(map(len, lines)) <= 80
    short = records.short_ids(store, ids)
    for run_id in ids:
        row = [line for line in lines if line.startswith(short[run_id] + " ")]
        assert len(row) == 1 and run_id not in out.output and f"lora-r{ids.index(run_id)}" in row[0]
        assert 8 <= len(short[run_id]) < len(run_id)
        shown = cli(store, "runs", "show", short[run_id], "--json")     # the prefix is accepted back
        assert json.loads(shown.output)["run"]["id"] == run_id
    wide = cli(store, "runs", "list", "--wide", columns=200)
    assert all(run_id in wide.output for run_id in ids)


def test_runs_show_lists_each_metric_with_last_min_max_and_steps(store: Store) -> None:
    run_id = trained(store, "a", 0.1, [2.0, 0.5, 0.75, math.nan])
    data = json.loads(cli(store, "runs", "show", run_id, "--json").output)
    (loss,) = data["metrics"]
    assert (loss["key"], loss["min"], loss["max"], loss["steps"], loss["points"]) == ("train/loss", 0.5, 2.0, 4, 4)
    assert loss["latest"] == "NaN"
    text = cli(store, "runs", "show", run_id, columns=120).output
    row = next(line for line in text.splitlines() if "train/loss" in line)
    assert row.split()[-4:] == ["nan", "0.5", "2", "4"]


def test_compare_shows_only_what_differs_grouped_and_without_markup(store: Store) -> None:
    a = trained(store, "a", 0.1, [1.0, 0.5])
    b = trained(store, "b", 0.2, [1.0, 0.5])
    out = cli(store, "runs", "compare", a, b, columns=100)
    assert out.exit_code == 0, out.output
    assert "[bold]" not in out.output and "arg_000" not in out.output
    lines = out.output.splitlines()
    assert len(lines) < 20, out.output
    grouped = next(i for i, line in enumerate(lines) if line.startswith("config.training_args"))
    assert "learning_rate" in lines[grouped] and "0.1" in lines[grouped] and "0.2" in lines[grouped]
    assert "identical rows (--all shows them)" in out.output
    full = cli(store, "runs", "compare", a, b, "--all", columns=100)
    assert "arg_149" in full.output and "[bold]" not in full.output
    everything = json.loads(cli(store, "runs", "compare", a, b, "--all", "--json").output)
    assert any(r["key"] == "training_args.arg_000" and not r["differs"] for r in everything["rows"])
    differing = json.loads(cli(store, "runs", "compare", a, b, "--json").output)
    assert all(r["differs"] for r in differing["rows"]) and differing["hidden"] > 150


def test_tag_note_and_delete_on_the_command_line(store: Store) -> None:
    keep, gone = trained(store, "keep", 0.1, [1.0]), trained(store, "gone", 0.2, [1.0])
    assert cli(store, "runs", "tag", keep[:10], "team=nlp", "stage=final").exit_code == 0
    assert cli(store, "runs", "note", keep[:10], "best so far [really]").exit_code == 0
    shown = cli(store, "runs", "show", keep, columns=120).output
    assert "team=nlp" in shown and "best so far [really]" in shown
    found = json.loads(cli(store, "runs", "list", "--where", "tags.team == 'nlp'", "--json").output)
    assert [r["id"] for r in found] == [keep]
    bad = cli(store, "runs", "tag", keep, "novalue")
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "KEY=VALUE" in bad.output
    assert cli(store, "runs", "delete", gone).exit_code == 2          # --reason is required
    deleted = cli(store, "runs", "delete", gone, "-m", "bad data", "--json")
    assert deleted.exit_code == 0 and json.loads(deleted.output)["reason"] == "bad data"
    listed = json.loads(cli(store, "runs", "list", "--json").output)
    assert [r["id"] for r in listed] == [keep]
    tombstones = json.loads(cli(store, "runs", "list", "--deleted", "--json").output)
    assert [r["id"] for r in tombstones] == [gone]
    again = cli(store, "runs", "delete", gone, "-m", "twice")
    assert again.exit_code == 1 and "Traceback" not in again.output and "was deleted" in again.output
    assert "deleted" in cli(store, "runs", "show", gone, columns=120).output


def test_one_meaning_per_short_flag_across_the_cli() -> None:
    from typer.main import get_command

    meanings: dict[str, set[str]] = {}

    def walk(cmd) -> None:  # noqa: ANN001
        for p in cmd.params:
            names = [*p.opts, *p.secondary_opts]
            longs = tuple(sorted(n for n in names if n.startswith("--")))
            for short in (n for n in names if n.startswith("-") and not n.startswith("--")):
                meanings.setdefault(short, set()).add(longs)
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(get_command(app))
    clashes = {s: m for s, m in meanings.items() if len(m) > 1}
    assert not clashes, clashes
    assert meanings["-n"] == {("--name",)} and meanings["-L"] == {("--limit",)}


def test_help_shows_no_type_for_flags() -> None:
    from typer.main import get_command

    def paths(cmd, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:  # noqa: ANN001
        out = [prefix]
        for name, sub in getattr(cmd, "commands", {}).items():
            out += paths(sub, (*prefix, name))
        return out

    every = paths(get_command(app))
    assert len(every) > 50
    for path in every:
        out = runner.invoke(app, [*path, "--help"]).output
        assert "Usage" in out and "<bool>" not in out, (path, out)


def test_data_list_fits_80_columns_one_line_per_snapshot(store: Store, tmp_path: Path) -> None:
    from runlock.data.snapshot import create_snapshot

    for name in ("tickets-cleaned", "faq"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text(name)
        create_snapshot(store, tmp_path / name, name)
    lines = cli(store, "data", "list").output.splitlines()
    assert max(map(len, lines)) <= 80
    assert len([line for line in lines if line.startswith(("ds:tickets-cleaned@v1 ", "ds:faq@v1 "))]) == 2


def test_runs_show_words_a_missing_commit_and_seed(store: Store, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)    # a repository with no commit yet
    with runlock.start_run(project="support-bot", name="first", store=store) as run:
        pass
    text = cli(store, "runs", "show", run.id, columns=120).output
    assert "code: no commit yet, the git repository has none" in text
    assert "seed: none recorded" in text
    assert "None" not in text
