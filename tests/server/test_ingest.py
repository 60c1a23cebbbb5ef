"""A training script logs to the server through start_run: every point arrives, once."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import runlock
from runlock.errors import RunlockError
from runlock.remote import credentials
from runlock.remote.client import connect
from runlock.remote.run import RemoteRun
from runlock.tracking import series
from runlock.workspace import open_store


def test_start_run_logs_to_the_server_and_flush_waits_for_the_ack(client_env) -> None:
    with runlock.start_run("proj", "r1", config={"lr": 0.1}, seed=3) as run:
        assert isinstance(run, RemoteRun)
        for step in range(1000):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 1000}, step=step)
        run.log({"weird": math.nan}, step=1000)
        run.flush(timeout=30)
        pts = connect().points(run.id, key="loss")
        assert len(pts) == 1000
    rec = connect().get_run(run.id)
    assert rec["status"] == "finished" and rec["created_by"] == "editor" and rec["recipe_id"].startswith("sha256:")
    store = open_store(client_env.folder)
    try:
        keys = {k.key: k.points for k in series.summarize(store, run.id)}
        assert keys == {"loss": 1000, "acc": 1000, "weird": 1}
        assert math.isnan(next(series.points(store, run.id, keys=["weird"])).value)
    finally:
        store.close()


def test_a_batch_sent_twice_is_stored_once(client_env) -> None:
    c = connect()
    run = c.create_run({"project": "proj"})
    pts = [["loss", s, s + 1, 0.5, 1.0] for s in range(100)]
    c.send_points(run["id"], 0, pts)
    c.send_points(run["id"], 0, pts)
    assert len(c.points(run["id"])) == 100


def test_server_killed_mid_run_loses_no_point(client_env) -> None:
    run = runlock.start_run("proj", "fault")
    for step in range(3000):
        run.log({"a": float(step), "b": 1.0}, step=step)
        if step == 1000:
            run.flush(timeout=30)
            client_env.kill()                     # SIGKILL: no goodbye
        if step == 2000:
            client_env.start()                    # the same store, a new process
    run.flush(timeout=60)
    run.finish()
    c = connect()
    assert c.get_run(run.id)["status"] == "finished"
    got = c.points(run.id, key="a")
    assert [p[1] for p in got] == list(range(3000))


def test_log_artifact_uploads_by_digest_and_download_checks_it(client_env, tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "w.bin").write_bytes(b"\x00" * 1000)
    (out / "cfg.json").write_text("{}")
    with runlock.start_run("proj") as run:
        art = run.log_artifact(out, "model", kind="model")
    assert art["files"] == 2 and art["digest"].startswith("sha256:")
    c = connect()
    got = c.download(art["digest"], tmp_path / "manifest.json")
    assert b"w.bin" in got.read_bytes()


def test_a_viewer_cannot_start_a_run(client_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLOCK_TOKEN", client_env.tokens["viewer"])
    with pytest.raises(RunlockError, match="viewer|refused|not allowed|needs"):
        runlock.start_run("proj")


def test_login_keeps_the_token_in_a_private_file(client_env, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("RUNLOCK_TOKEN")
    r = subprocess.run([sys.executable, "-c", "from runlock.cli.entry import main; main()", "login",
                        client_env.url, "--token", client_env.tokens["maintainer"]],
                       capture_output=True, text=True, env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    f = credentials.credentials_file()
    assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert connect().whoami()["name"] == "maintainer"


def test_runs_are_listed_and_filtered_through_the_client(client_env) -> None:
    for lr in (0.1, 0.001):
        with runlock.start_run("proj", f"lr{lr}", config={"lr": lr}) as run:
            run.log({"loss": lr})
    c = connect()
    assert {r["name"] for r in c.list_runs(project="proj")} == {"lr0.1", "lr0.001"}
    assert [r["name"] for r in c.list_runs(where="config.lr > 0.01")] == ["lr0.1"]
    assert c.metrics(run.id)[0]["key"] == "loss"
