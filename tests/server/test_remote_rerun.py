"""`runlock rerun`, `verify` and `variance` of runs a team server holds (issue 14, item 2): the
rerun runs here from the recipe the server sends (its inputs rebuilt from the server's objects,
the recorded diff applied), records to the server, and the server itself compares the rerun
with the original and stores the verification. A client cannot state a tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server

TRAIN = """
import json, sys
from pathlib import Path
import numpy as np
import runlock

seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 7
runlock.seed_everything(seed)
run = runlock.start_run("rerun-proj", "toy", config={"lr": LR, "seed": seed})
data = run.use(runlock.snapshot("data/train.csv", "train"))
rows = Path("data/train.csv").read_text().splitlines()
rng = np.random.default_rng(seed)
w = 0.0
for step in range(20):
    w += LR * (len(rows) - w) + rng.normal() * 0.01
    run.log({"loss": 1.0 / (1.0 + w)}, step=step)
Path("out").mkdir(exist_ok=True)
Path("out/outputs.json").write_text(json.dumps({"a": w, "b": [w, 2 * w]}))
run.log_artifact("out/outputs.json", name="outputs")
run.set_summary({"final": w})
run.finish()
print(run.id)
"""


def _env(server: Server, tmp_path: Path, role: str = "editor") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
    return {**env, "RUNLOCK_SERVER": server.url, "RUNLOCK_TOKEN": server.tokens[role],
            "RUNLOCK_SPOOL_DIR": str(tmp_path / "spool"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _runlock(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    code = "from runlock.cli.entry import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository a user would have: the script committed, then edited (an uncommitted diff),
    its data in a gitignored folder."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data/train.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(40)))
    (work / ".gitignore").write_text("data/\nout/\n")
    (work / "train.py").write_text(textwrap.dedent(TRAIN).replace("LR", "0.05"))
    _git(work, "init", "-q")
    _git(work, "add", ".")
    _git(work, "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-qm", "toy")
    (work / "train.py").write_text(textwrap.dedent(TRAIN).replace("LR", "0.1"))   # uncommitted
    return work


def test_verify_and_rerun_against_a_server(server: Server, project: Path, tmp_path: Path) -> None:
    env = _env(server, tmp_path)
    done = subprocess.run([sys.executable, "train.py", "--seed", "7"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    original = done.stdout.split()[-1]
    # the data is gone from the work tree and the script is back at the commit: the rerun gets
    # both from the server (the snapshot's bytes, the recorded diff)
    (project / "data/train.csv").unlink()
    _git(project, "checkout", "--", "train.py")

    verified = _runlock("verify", original, "--json", env=env, cwd=project)
    assert verified.returncode == 0, verified.stderr
    found = json.loads(verified.stdout)
    assert found["tier"] == "bitwise" and found["kind"] == "rerun" and found["run_id"] == original
    rerun_id = found["rerun_id"]
    assert rerun_id and rerun_id != original
    assert not (project / "data/train.csv").exists()        # rebuilt in a temporary worktree only

    headers = server.headers("admin")
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers) as http:
        rec = http.get(f"/runs/{rerun_id}").json()
        assert rec["status"] == "finished" and rec["project"] == "rerun-proj"
        assert rec["summary"]["final"] == http.get(f"/runs/{original}").json()["summary"]["final"]
        lock = http.get(f"/runs/{rerun_id}/view").json()["lock"]
        assert lock["config"] == {"lr": 0.1, "seed": 7}     # the diff was applied
        assert lock["code"]["git"]["diff"] == http.get(f"/runs/{original}/view").json()["lock"]["code"]["git"]["diff"]
        stored = http.get(f"/runs/{original}/verifications").json()["verifications"]
        assert [(v["tier"], v["rerun_id"], v["created_by"]) for v in stored] == [("bitwise", rerun_id, "editor")]
        log = http.get("/audit/log", params={"action": "verification.create"}).json()
        assert [e["target"] for e in log["entries"]] == [f"run:{original}"]

    history = _runlock("verify", original, "--history", env=env, cwd=project)
    assert history.returncode == 0 and "bitwise" in history.stdout, history.stderr

    again = _runlock("rerun", original, "--json", env=env, cwd=project)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["run"]
    compared = _runlock("compare", original, second, "--json", env=env, cwd=project)
    assert json.loads(compared.stdout)["tier"] == "bitwise"

    spread = _runlock("variance", original, "--seeds", "2", "--json", env=env, cwd=project)
    assert spread.returncode == 0, spread.stderr
    stats = json.loads(spread.stdout)
    assert len(stats["runs"]) == 2 and stats["stats"]["final"]["n"] == 2 and stats["stats"]["final"]["std"] > 0


def test_a_client_cannot_state_a_tier_or_verify_with_a_stranger(server: Server, project: Path,
                                                               tmp_path: Path) -> None:
    env = _env(server, tmp_path)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "train.py"], cwd=project, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout.split()[-1])
    a, b = runs
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=server.headers("editor")) as http:
        # a run that is not a rerun of the original cannot verify it
        r = http.post(f"/runs/{a}/verifications", json={"rerun": b})
        assert r.status_code == 400 and "not a rerun" in r.json()["error"]
        # a tier is not something a client sends: the server compares (extra fields are ignored)
        assert http.post(f"/runs/{b}/reproduces", json={"of": a}).status_code == 201
        r = http.post(f"/runs/{a}/verifications", json={"rerun": b, "tier": "different"})
        assert r.status_code == 201 and r.json()["tier"] == "bitwise"
        assert http.post(f"/runs/{a}/reproduces", json={"of": a}).status_code == 400
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=server.headers("viewer")) as http:
        assert http.post(f"/runs/{a}/verifications", json={"rerun": b}).status_code == 403
        assert http.get(f"/runs/{a}/recipe").status_code == 200           # reading the recipe is a read
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=server.headers("outsider")) as http:
        assert http.get(f"/runs/{a}/recipe").status_code == 403
    sample = _runlock("verify", "--sample", "1", env=env, cwd=project)
    assert sample.returncode == 2 and "where the store is" in sample.stderr + sample.stdout


def test_a_wrapped_command_reruns_and_a_rerun_that_cannot_happen_is_recorded_failed(
        server: Server, project: Path, tmp_path: Path) -> None:
    env = _env(server, tmp_path)
    wrapped = _runlock("run", "-p", "rerun-proj", "--", sys.executable, "train.py", env=env, cwd=project)
    assert wrapped.returncode == 0, wrapped.stderr
    original = wrapped.stdout.split()[-1]
    verified = _runlock("verify", original, "--json", env=env, cwd=project)
    assert verified.returncode == 0, verified.stderr
    found = json.loads(verified.stdout)
    assert found["tier"] == "bitwise", found
    # a repository without the recorded commit: the verification is stored, failed, with the reason
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    failed = _runlock("verify", original, "--repo", str(empty), "--json", env=env, cwd=project)
    assert failed.returncode == 1, failed.stderr
    outcome = json.loads(failed.stdout)
    assert outcome["tier"] == "failed" and "is not in the repository" in outcome["report"]["error"]
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=server.headers("viewer")) as http:
        stored = http.get(f"/runs/{original}/verifications").json()["verifications"]
    assert [v["tier"] for v in stored] == ["bitwise", "failed"]
    assert stored[0]["rerun_id"] == found["rerun_id"] and stored[1]["rerun_id"] is None
