"""`runlock run -- CMD` against a team server, and a remote run its script never ends: every point
logged before the interpreter exits is on the server, the run is sealed from what happened, and
the script a new user writes (seed_everything, start_run, current_run().log, no flush) records
one run, as it does against a folder (issue 12 section 1, issue 14 item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runlock.remote.client import Client
from runlock.remote.run import create_remote_run
from runlock.remote.spool import Spool, drain
from tests.server.conftest import Server, scoped_token

QUICKSTART = """
import runlock
runlock.seed_everything(42)
run = runlock.start_run("demo", "quickstart", config={"lr": 0.01})
for step in range(50):
    runlock.current_run().log({"loss": 1.0 / (step + 1)}, step=step)
print("script done", run.id)
"""


def _env(server: Server, tmp_path: Path, role: str = "editor", token: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
    return {**env, "RUNLOCK_SERVER": server.url, "RUNLOCK_TOKEN": token or server.tokens[role],
            "RUNLOCK_SPOOL_DIR": str(tmp_path / "spool"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def _script(tmp_path: Path, text: str, name: str = "train.py") -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = work / name
    path.write_text(textwrap.dedent(text))
    return path


def _runlock(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    code = "from runlock.cli.entry import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _runs(server: Server, project: str) -> list[dict]:
    client = Client(server.url, server.tokens["admin"])
    try:
        return client.list_runs(project=project)
    finally:
        client.close()


def _points(server: Server, run_id: str) -> list[list]:
    client = Client(server.url, server.tokens["admin"])
    try:
        return client.points(run_id)
    finally:
        client.close()


@pytest.mark.parametrize("ending, status", [("", "finished"), ("raise ValueError('boom')", "failed")])
def test_a_remote_run_never_ended_ships_every_point_then_is_sealed(server: Server, tmp_path: Path,
                                                                   ending: str, status: str) -> None:
    script = _script(tmp_path, f"""
        import runlock
        run = runlock.start_run("left", "open", config={{"lr": 0.1}})
        for step in range(50):
            run.log({{"loss": 1.0 / (step + 1)}}, step=step)
        print(run.id)
        {ending}
        """)
    done = subprocess.run([sys.executable, str(script)], env=_env(server, tmp_path), capture_output=True, text=True,
                          timeout=120)
    run_id = done.stdout.split()[0]
    (run,) = _runs(server, "left")
    assert run["id"] == run_id and run["status"] == status, done.stderr
    assert len(_points(server, run_id)) == 50
    if status == "failed":
        assert "ValueError: boom" in run["error"]
    assert not list((tmp_path / "spool").glob("*.sqlite"))      # nothing left behind


def test_runlock_run_against_a_server_records_one_run_with_every_point(server: Server, tmp_path: Path) -> None:
    script = _script(tmp_path, QUICKSTART)
    env = _env(server, tmp_path)
    done = _runlock("run", "--project", "demo", "--", sys.executable, str(script), env=env, cwd=script.parent)
    assert done.returncode == 0, done.stderr
    (run,) = _runs(server, "demo")                   # one run: the script joined the wrapper's
    assert f"run:{run['id']} started" in done.stderr and f"run:{run['id']} finished" in done.stderr
    assert f"script done {run['id']}" in done.stdout
    assert (run["name"], run["status"]) == ("quickstart", "finished")
    assert len(_points(server, run["id"])) == 50
    shown = json.loads(_runlock("runs", "show", run["id"], "--json", env=env, cwd=script.parent).stdout)
    assert shown["lock"]["seed"] == 42 and shown["lock"]["seeding"]["seed"] == 42
    assert shown["lock"]["config"] == {"lr": 0.01}
    assert shown["lock"]["entrypoint"]["argv"][-1].endswith("train.py")
    checked = json.loads(_runlock("check", run["id"], "--json", env=env, cwd=script.parent).stdout)
    assert {r["rule"]: r["passed"] for r in checked["results"]}["seeds-recorded"]


def test_runlock_run_seals_a_failed_command_failed_with_its_points(server: Server, tmp_path: Path) -> None:
    script = _script(tmp_path, """
        import sys, runlock
        for step in range(7):
            runlock.current_run().log({"loss": 0.5}, step=step)
        sys.exit(3)
        """)
    env = _env(server, tmp_path)
    done = _runlock("run", "-p", "demo", "--json", "--", sys.executable, str(script), env=env, cwd=script.parent)
    result = json.loads(done.stdout)
    assert done.returncode == 3 and result["returncode"] == 3 and result["status"] == "failed"
    assert "Command exited with status 3" in result["error"]
    assert len(_points(server, result["run_id"])) == 7


def test_points_a_killed_script_left_spooled_are_shipped_by_the_wrapper(server: Server, tmp_path: Path) -> None:
    """A script killed before it shipped leaves its points in the spool on disk; `runlock run`
    sends them before it seals the run (the server was away while the script ran)."""
    env = _env(server, tmp_path)
    client = Client(server.url, server.tokens["editor"])
    try:
        run_id = create_remote_run(client, "demo", "killed")[0]["id"]
        os.environ["RUNLOCK_SPOOL_DIR"] = env["RUNLOCK_SPOOL_DIR"]
        try:
            away = Spool(Client("http://127.0.0.1:9", "x"), run_id)     # nothing answers there
            for step in range(40):
                away.append(step, {"loss": float(step), "acc": 0.5})
            with pytest.warns(RuntimeWarning, match="kept in"):
                assert away.close(timeout=0.5) == 40                  # kept on disk
            assert list((tmp_path / "spool").glob(f"{run_id}.r0.sqlite"))
            assert drain(client, run_id, timeout=30) == 0
        finally:
            del os.environ["RUNLOCK_SPOOL_DIR"]
        assert len(_points(server, run_id)) == 80 and not list((tmp_path / "spool").glob("*.sqlite"))
    finally:
        client.close()
    script = _script(tmp_path, """
        import os, signal, time, runlock
        for step in range(40):
            runlock.current_run().log({"loss": 0.5}, step=step)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
        """, "killed.py")
    done = _runlock("run", "-p", "demo", "--json", "--", sys.executable, str(script), env=env, cwd=script.parent)
    result = json.loads(done.stdout)
    assert result["status"] == "failed" and result["returncode"] == -9 and done.returncode == 137
    assert len(_points(server, result["run_id"])) == 40


def test_a_project_the_token_may_not_write_says_to_name_one(server: Server, tmp_path: Path) -> None:
    token = scoped_token(server.folder.parent, "alice", "editor", "demo")
    script = _script(tmp_path, QUICKSTART)
    env = _env(server, tmp_path, token=token)
    # one project alice may write to: the run starts there (the script names it too)
    assert _runlock("run", "--", sys.executable, str(script), env=env, cwd=script.parent).returncode == 0
    assert _runlock("run", "-p", "demo", "--", sys.executable, str(script), env=env, cwd=script.parent).returncode == 0
    assert [r["name"] for r in _runs(server, "demo")] == ["quickstart", "quickstart"]
    # two projects: which one is not a guess; the refusal says to name one
    client = Client(server.url, server.tokens["admin"])
    try:
        client.call("POST", "/grants", json={"name": "alice", "role": "editor", "project": "other"})
    finally:
        client.close()
    refused = _runlock("run", "--", sys.executable, str(script), env=env, cwd=script.parent)
    assert refused.returncode == 3 and "--project NAME" in " ".join(refused.stderr.split()) and "Traceback" not in refused.stderr


RANKS = """
import os, subprocess, sys
procs = [subprocess.Popen([sys.executable, "rank.py"], env={**os.environ, "RUNLOCK_RANK": str(r)}) for r in range(4)]
sys.exit(max(p.wait() for p in procs))
"""
RANK = """
import runlock
runlock.seed_everything(3)
run = runlock.start_run("ranks", "ddp")
for i in range(30):
    runlock.current_run().log({"x": float(i)}, step=i)
"""


def test_ranks_of_a_distributed_command_each_log_to_the_one_remote_run(server: Server, tmp_path: Path) -> None:
    """Every process of a distributed job (RUNLOCK_RANK) logs its own rank; a rank that joins again
    (a restarted worker) numbers on after what the server holds, so none of its points is taken
    for a repeat and dropped."""
    _script(tmp_path, RANK, "rank.py")
    launcher = _script(tmp_path, RANKS, "launch.py")
    env = _env(server, tmp_path)
    done = _runlock("run", "-p", "ranks", "--json", "--", sys.executable, str(launcher), env=env, cwd=launcher.parent)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    points = _points(server, run_id)
    assert {r: sorted(p[1] for p in points if p[3] == r) for r in range(4)} == {r: list(range(30)) for r in range(4)}
    rec = _runs(server, "ranks")[0]
    assert rec["status"] == "finished" and rec["name"] == "ddp"

    again = _script(tmp_path, """
        import os, subprocess, sys
        for _ in range(2):     # rank 1 twice, one after the other, each logging steps 100..104
            subprocess.run([sys.executable, "again.py"], env={**os.environ, "RUNLOCK_RANK": "1"}, check=True)
        """, "twice.py")
    _script(tmp_path, """
        import runlock
        run = runlock.current_run()
        for i in range(5):
            run.log({"y": float(i)}, step=100 + i)
        """, "again.py")
    done = _runlock("run", "-p", "ranks", "--json", "--", sys.executable, str(again), env=env, cwd=again.parent)
    assert done.returncode == 0, done.stderr
    ys = [p for p in _points(server, json.loads(done.stdout)["run_id"]) if p[0] == "y"]
    assert len(ys) == 10 and {p[3] for p in ys} == {1}
