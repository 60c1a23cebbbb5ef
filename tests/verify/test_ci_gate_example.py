"""docs/examples/runlock-gate.yml works as written: both jobs' `run:` steps, in order, in bash.

The pull-request job runs in a toy project (a committed train.py, its config, its data and the
policy file that docs/ci-gate.md shows) against the job's own store. The weekly job runs in a fresh
clone against a team store on a real PostgreSQL server and a real S3-compatible server, reached
through the secrets the example names. Steps that are GitHub actions (`uses:`) and the project's
own `pip install -e .` (the toy project is not a package; runlock is already installed) are the
only ones not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pg import new_database

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "examples" / "runlock-gate.yml"

TRAIN = '''
import argparse, json, random
import yaml
import runlock

p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
cfg = yaml.safe_load(open(a.config))
runlock.seed_everything(a.seed)
snap = runlock.snapshot("data/tickets.jsonl", name="tickets", id_column="id")
split = runlock.split(snap, name="tickets", ratios=(0.8, 0.2), seed=a.seed)
with runlock.start_run(project="bot", name="ci", config=cfg, seed=a.seed) as run:
    run.use(split)
    w = 0.0
    for step in range(cfg["steps"]):
        w += cfg["lr"] * (1.0 - w) + random.random() * 1e-3
        run.log({"train/loss": 1.0 - w}, step=step)
    run.set_summary({"test/f1": round(w, 6)})
'''


def _policy() -> str:
    text = (ROOT / "docs" / "ci-gate.md").read_text()
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


def _steps(job: str, context: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The job's env and its `run:` scripts, with ${{ … }} expressions filled in from ``context``."""
    spec = yaml.safe_load(WORKFLOW.read_text())["jobs"][job]

    def fill(text: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: context[m.group(1)], str(text))

    env = {k: fill(v) for k, v in spec.get("env", {}).items()}
    runs = [fill(s["run"]) for s in spec["steps"] if "run" in s and s["run"].strip() != "pip install -e ."]
    return env, runs


def _run_job(job: str, cwd: Path, context: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    env_vars, scripts = _steps(job, context)
    github_env = cwd.parent / f"{job}.github_env"
    github_env.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
    env.update(extra or {})
    env.update(env_vars, GITHUB_ENV=str(github_env), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    for script in scripts:
        env.update(dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line))
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"step failed:\n{script}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    return env


def _toy_project(repo: Path) -> None:
    repo.mkdir()
    (repo / "configs").mkdir()
    (repo / "data").mkdir()
    (repo / "train.py").write_text(TRAIN)
    (repo / "configs" / "ci.yaml").write_text("lr: 0.1\nsteps: 20\n")
    (repo / "data" / "tickets.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "text": f"ticket {i}: the {['app', 'bill', 'login'][i % 3]} fails on day {i}"}) + "\n"
        for i in range(60)))
    (repo / "runlock-policy.toml").write_text(_policy())
    (repo / ".gitignore").write_text(".runlock/\nevidence/\nrehearsal.json\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "toy project"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)


@pytest.mark.slow
def test_the_pull_request_job_runs_as_written(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _toy_project(repo)
    _run_job("reproduce", repo, {"github.workspace": str(repo)})
    evidence = repo / "evidence"
    check = json.loads((evidence / "check.json").read_text())
    assert check["ok"] is True, check
    history = json.loads((evidence / "verifications.json").read_text())
    assert history and history[0]["tier"] == "bitwise"
    assert (evidence / "Dockerfile").is_file() and (evidence / "requirements.lock").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_the_weekly_job_rehearses_the_team_store_from_its_secrets(tmp_path: Path, pg_base_url: str,
                                                                   s3_endpoint: str, s3_bucket: str) -> None:
    repo = tmp_path / "repo"
    _toy_project(repo)
    database, objects = new_database(pg_base_url), s3_bucket
    team = tmp_path / "team-admin"      # whoever set the team store up, training into it
    team.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}, "RUNLOCK_STORE": str(team),
           "PYTHONHASHSEED": "0", "RUNLOCK_S3_ENDPOINT_URL": s3_endpoint, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["runlock", "init", str(team), "--database", database, "--objects", objects], env=env, check=True,
                   capture_output=True)
    trained = subprocess.run([sys.executable, "train.py", "--config", "configs/ci.yaml", "--seed", "42"], cwd=repo,
                             env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]

    checkout = tmp_path / "checkout"    # the weekly job's machine: a fresh clone, no store of its own
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
    secrets = {"secrets.RUNLOCK_DATABASE": database, "secrets.RUNLOCK_OBJECTS": objects,
               "secrets.PGPASSWORD": os.environ.get("PGPASSWORD", ""),
               "secrets.AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
               "secrets.AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]}
    # the S3 server is a local one, so the runner is told where it is (AWS S3 itself needs nothing)
    _run_job("rehearse", checkout, {"runner.temp": str(tmp_path / "runner-temp"), **secrets},
             extra={"RUNLOCK_S3_ENDPOINT_URL": s3_endpoint})
    rehearsal = json.loads((checkout / "rehearsal.json").read_text())
    assert rehearsal["counts"]["bitwise"] == 1 and not rehearsal["regressed"], rehearsal
    (result,) = rehearsal["results"]
    assert result["tier"] == "bitwise" and result["error"] is None
