"""Nothing logged is lost silently (issue 12, section 1): every point logged before a normal exit
is stored however the run was started; a point that cannot be stored is counted, and a run that
lost any is never sealed a clean ``finished``. Each test failed on the code before the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import records, series
from runlock.tracking.wrapper import run_command
from runlock.tracking.writer import MetricWriter, WriterSettings
from runlock.verify.checklist import check

runner = CliRunner()

SMOKE = 'import runlock\nr = runlock.current_run()\nfor i in range(50):\n    r.log({"x": float(i)}, step=i)\n'
RANKS = textwrap.dedent("""
    import os, subprocess, sys
    procs = [subprocess.Popen([sys.executable, "s.py"], env={**os.environ, "RUNLOCK_RANK": str(r)}) for r in range(8)]
    sys.exit(max(p.wait() for p in procs))
""")


def cli(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def count(store: Store, run_id: str) -> int:
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(metrics).where(metrics.c.run_id == run_id)).scalar()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert cli("init", str(tmp_path)).exit_code == 0
    (tmp_path / "s.py").write_text(SMOKE)
    return tmp_path


def _run_id(store: Store) -> str:
    (rec,) = records.list_runs(store)
    return rec.id


def test_the_smoke_script_under_runlock_run_stores_all_50_points_without_a_flush(project: Path) -> None:
    result = cli("run", "-p", "smoke", "--", sys.executable, "s.py")
    assert result.exit_code == 0, result.output
    store = runlock.open_store(project)
    run_id = _run_id(store)
    csv = cli("metrics", run_id, "--key", "x", "--csv").output.strip().splitlines()
    assert len(csv) == 1 + 50 and csv[0].startswith("step,value")
    rec = records.get(store, run_id)
    assert rec.status == "finished" and rec.last_step == 49 and "lost_points" not in rec.context


def test_eight_ranks_logging_into_one_wrapped_run_store_every_point(project: Path) -> None:
    (project / "ranks.py").write_text(RANKS)
    result = cli("run", "-p", "smoke", "--", sys.executable, "ranks.py")
    assert result.exit_code == 0, result.output
    store = runlock.open_store(project)
    run_id = _run_id(store)
    points = list(series.points(store, run_id, keys=["x"]))
    assert len(points) == 8 * 50
    assert {r: sorted(p.step for p in points if p.rank == r) for r in range(8)} == {r: list(range(50)) for r in range(8)}
    rec = records.get(store, run_id)
    assert rec.status == "finished" and len(rec.context["writers"]) == 8
    assert all(w["state"] == "closed" and w["lost"] == 0 for w in rec.context["writers"].values())


def test_a_process_that_dies_without_flushing_leaves_a_failed_run_that_check_and_verify_name(project: Path) -> None:
    (project / "s.py").write_text(SMOKE + "import os\nos._exit(0)   # no atexit: the queued points die with it\n")
    result = run_command(runlock.open_store(project), [sys.executable, "s.py"], project="smoke")
    store = runlock.open_store(project)
    rec = records.get(store, result.run_id)
    assert result.returncode == 0 and result.status == rec.status == "failed"
    assert "Metrics incomplete" in rec.error and rec.context["unflushed_writers"][0]["rank"] == 0
    report = check(store, rec.id)
    (rule,) = [r for r in report.results if r.rule == "metrics-complete"]
    assert not rule.passed and not report.ok
    shown = cli("runs", "show", rec.id)
    assert "metrics incomplete" in shown.output
    verdict = runlock.verify.verify(store, rec.id)
    assert verdict.tier == "failed" and "incomplete" in json.dumps(verdict.to_dict())


def test_runlock_run_exits_non_zero_when_the_command_succeeded_but_points_were_lost(project: Path) -> None:
    (project / "s.py").write_text(SMOKE + "import os\nos._exit(0)\n")
    result = cli("run", "--json", "-p", "smoke", "--", sys.executable, "s.py")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"


@pytest.mark.parametrize("key, message", [("\ud800", "lone surrogate"), ("a\x00b", "control character"),
                                           ("loss\n", "control character")])
def test_a_name_no_store_can_hold_is_refused_at_the_call_and_later_points_are_all_written(
        store: Store, key: str, message: str) -> None:
    with runlock.start_run(project="p", store=store) as run:
        with pytest.raises(InvalidInput, match=message):
            run.log({key: 1.0}, step=0)
        for i in range(100_000):
            run.log({"x": float(i)}, step=i)
    rec = records.get(store, run.id)
    assert rec.status == "finished" and count(store, run.id) == 100_000 and run.lost_points == 0


def test_an_unexpected_error_in_the_writer_thread_is_counted_and_the_run_is_sealed_failed(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = MetricWriter._insert
    calls = []

    def flaky(self, conn, pending):  # noqa: ANN001, ANN202 - a driver error nobody translated
        calls.append(len(pending))
        if len(calls) <= 3:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real(self, conn, pending)

    monkeypatch.setattr(MetricWriter, "_insert", flaky)
    run = runlock.start_run(project="p", store=store,   # writes on flush only: one batch of 10
                            settings=WriterSettings(batch_points=10**9, interval_ms=60_000, max_retry_s=0.01))
    for i in range(10):
        run.log({"a": float(i)}, step=i)
    with pytest.raises(runlock.RunlockError, match="dropped"):
        run.flush(timeout=30)
    run.log({"a": 10.0}, step=10)         # the thread lives on: later points are written
    run.flush(timeout=30)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        run.finish()
    rec = records.get(store, run.id)
    assert count(store, run.id) == 1 and rec.status == "failed" and rec.context["lost_points"] == 10
    assert "ValueError" in rec.error and "10 metric point(s)" in rec.error


def test_finish_does_not_ignore_points_the_store_refused(store: Store) -> None:
    """A run whose points were dropped (the store refused them past the bound) is sealed failed."""
    run = runlock.start_run(project="p", store=store, settings=WriterSettings(
        batch_points=100, interval_ms=10, max_retry_s=0.05, max_buffered=500))
    run.log({"a": 0.0}, step=0)
    run.flush()
    store.db.dispose()

    @event.listens_for(store.db.engine, "connect")
    def _read_only(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.execute("PRAGMA query_only=ON")   # SQLite itself refuses every write from here on

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for i in range(1, 3001):
            run.log({"a": float(i)}, step=i)
        time.sleep(0.2)
        assert run._writer.buffered_points <= 500 + 1
        store.db.dispose()                 # connections without the restriction again
        run.finish(timeout=30)
    rec = records.get(store, run.id)
    assert rec.status == "failed" and rec.context["lost_points"] == run.dropped_points > 0
    assert count(store, run.id) + rec.context["lost_points"] == 3001


def test_max_buffered_holds_on_a_healthy_but_slower_store(store: Store) -> None:
    """log() waits instead of queueing without bound when the store is slower than the loop."""
    @event.listens_for(store.db.engine, "before_cursor_execute")
    def _slow(*_args) -> None:  # noqa: ANN002
        time.sleep(0.002)           # a store on a slow disk: every statement takes a little while

    run = runlock.start_run(project="p", store=store, settings=WriterSettings(batch_points=200, max_buffered=1000))
    highest = 0
    for i in range(20_000):
        run.log({"a": float(i), "b": 1.0}, step=i)
        highest = max(highest, run._writer.buffered_points)
    run.finish()
    assert highest <= 1000 + 1       # the bound, plus the one call that found room
    assert count(store, run.id) == 40_000 and records.get(store, run.id).status == "finished"


JOINER = """
import os, sys, runlock
run = runlock.join_run(sys.argv[1], store=sys.argv[2], rank=1)
for i in range(200):
    run.log({"x": float(i)}, step=i)
if sys.argv[3] == "die":
    os._exit(0)
"""


def test_the_owner_waits_for_joined_processes_and_counts_what_they_lost_on_both_backends(
        any_store: Store, tmp_path: Path) -> None:
    joiner = tmp_path / "joiner.py"
    joiner.write_text(JOINER)
    outcomes = {}
    for how in ("exit", "die"):
        run = runlock.start_run(project="p", store=any_store)
        with pytest.raises(InvalidInput, match="control character"):
            run.log({"a\x00b": 1.0}, step=0)           # PostgreSQL text cannot hold a NUL
        run.log({"x": -1.0}, step=0)
        done = subprocess.run([sys.executable, str(joiner), run.id, str(any_store.root), how],
                                            capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            run.finish(timeout=10)
        outcomes[how] = (records.get(any_store, run.id), count(any_store, run.id))
    clean, stored = outcomes["exit"]
    assert clean.status == "finished" and stored == 201            # no flush in the joiner: atexit did it
    (writer,) = clean.context["writers"].values()
    assert writer["state"] == "closed" and writer["lost"] == 0 and writer["rank"] == 1
    died, _ = outcomes["die"]
    assert died.status == "failed" and died.context["unflushed_writers"][0]["rank"] == 1
