"""The server in production shape: PostgreSQL metadata and an S3-compatible bucket (moto), both
real servers on loopback. A script logs and uploads through it; a SIGKILL mid-run loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import runlock
from runlock.remote.client import connect
from tests.pg import new_database
from tests.server.conftest import make_server


@pytest.fixture
def team_server(pg_base_url: str, s3_endpoint: str, s3_bucket: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUNLOCK_S3_ENDPOINT_URL", s3_endpoint)
    s = make_server(tmp_path / "srv", database=new_database(pg_base_url), objects=s3_bucket,
                    env={"RUNLOCK_S3_ENDPOINT_URL": s3_endpoint}).start()
    work = tmp_path / "client"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RUNLOCK_SERVER", s.url)
    monkeypatch.setenv("RUNLOCK_TOKEN", s.tokens["editor"])
    monkeypatch.setenv("RUNLOCK_SPOOL_DIR", str(tmp_path / "spool"))
    try:
        yield s
    finally:
        s.stop()


def test_a_run_on_postgresql_and_s3_survives_a_killed_server(team_server, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x01" * 100_000)
    run = runlock.start_run("proj", "pg-s3", config={"lr": 0.1})
    for step in range(2000):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        if step == 500:
            run.flush(timeout=30)
            team_server.kill()
        if step == 1500:
            team_server.start()
    run.flush(timeout=60)
    art = run.log_artifact(weights, "weights")
    run.finish()
    c = connect()
    assert c.get_run(run.id)["status"] == "finished"
    assert [p[1] for p in c.points(run.id, key="loss")] == list(range(2000))
    assert c.download(art["digest"], tmp_path / "back.bin").read_bytes() == weights.read_bytes()
