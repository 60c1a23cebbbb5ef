"""One run per process (issue 13, item 1): ``seed_everything`` before ``start_run`` is recorded by
the run that starts next; under ``runlock run`` the script's ``start_run`` joins the wrapper's run
(its name, config and seed kept, the wrapper's seed when it gives none); ``runlock run`` prints
the run id as the run starts and answers ``--json``; the README quickstart run as written under
``runlock run`` is one run that passes ``runlock check``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

import runlock
from runlock.store import Store
from runlock.audit import audit_log
from runlock.tracking import lock as locks
from runlock.tracking import records, series
from runlock.tracking.wrapper import run_command

ROOT = Path(__file__).resolve().parents[2]
RUNLOCK = str(Path(sys.executable).parent / "runlock")

QUICKSTART_ORDER = """
import runlock
runlock.seed_everything(42)
with runlock.start_run(project="support-bot", name="lora-r8", config={{"lr": 0.1}}{seed}) as run:
    for step in range(3):
        run.log({{"train/loss": 1.0 / (step + 1)}}, step=step)
    print(run.id, run.recipe_id, flush=True)
"""


def script(tmp_path: Path, text: str, name: str = "train.py") -> list[str]:
    (tmp_path / name).write_text(textwrap.dedent(text))
    return [sys.executable, str(tmp_path / name)]


def lock_changes(store: Store, run_id: str) -> int:
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
            audit_log.c.target == f"run:{run_id}", audit_log.c.action == "run.lock")).scalar()


def test_the_quickstart_order_under_runlock_run_records_one_run_with_what_the_script_says(
        any_store: Store, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    store = any_store
    result = run_command(store, script(tmp_path, QUICKSTART_ORDER.format(seed="")))
    printed_id, printed_recipe = capfd.readouterr().out.split()
    (rec,) = records.list_runs(store)                       # one run, not the wrapper's plus another
    assert rec.id == result.run_id == printed_id and rec.status == "finished"
    assert (rec.project, rec.name) == ("support-bot", "lora-r8")
    assert rec.recipe_id == printed_recipe == result.recipe_id   # the id the script saw is the final one
    lock = locks.load(store, rec.recipe_id)
    assert lock["seed"] == 42 and lock["seeding"]["seed"] == 42 and lock["config"] == {"lr": 0.1}
    assert lock["entrypoint"]["argv"][-1].endswith("train.py")          # the wrapper's command
    assert [p.step for p in series.points(store, rec.id, keys=["train/loss"])] == [0, 1, 2]
    assert 1 <= lock_changes(store, rec.id) <= 2   # start_run's one change (the seeding report in it, or just before)


def test_the_command_line_name_and_project_win_and_the_wrapper_seed_stays_unless_the_script_gives_one(
        store: Store, tmp_path: Path) -> None:
    body = """
        import runlock
        with runlock.start_run(project="support-bot", name="lora-r8", tags={{"team": "nlp"}}{seed}) as run:
            run.log({{"loss": 1.0}}, step=0)
    """
    kept = run_command(store, script(tmp_path, body.format(seed="")), project="cli", name="sweep-3", seed=7)
    rec = records.get(store, kept.run_id)
    assert (rec.project, rec.name) == ("cli", "sweep-3") and locks.load(store, rec.recipe_id)["seed"] == 7
    assert rec.context["wrapper"]["fixed"] == ["project", "name"] and rec.tags == {"team": "nlp"}
    given = run_command(store, script(tmp_path, body.format(seed=", seed=3")), seed=7)
    rec = records.get(store, given.run_id)
    assert (rec.project, rec.name) == ("support-bot", "lora-r8") and locks.load(store, rec.recipe_id)["seed"] == 3
    assert len(records.list_runs(store)) == 2


def test_seed_everything_before_start_run_is_recorded_by_the_next_run_only(store: Store, tmp_path: Path) -> None:
    out = subprocess.run(script(tmp_path, f"""
        import runlock
        store = runlock.open_store({str(store.root)!r})
        runlock.seed_everything(5, deterministic=False)
        with runlock.start_run(project="p", store=store) as first:
            pass
        with runlock.start_run(project="p", store=store) as second:
            pass
        print(first.id, second.id)
    """), capture_output=True, text=True, check=True)
    first, second = (locks.load(store, records.get(store, i).recipe_id) for i in out.stdout.split())
    assert first["seed"] == 5 and first["seeding"]["seed"] == 5 and first["seeding"]["seeded"][0] == "python"
    assert second["seeding"] is None and second["seed"] is None


def test_runlock_run_prints_the_run_id_as_the_run_starts_and_json_keeps_stdout_clean(
        store: Store, tmp_path: Path) -> None:
    child = ("import os, sys; print('child-out'); "
             "print('child-sees', os.environ['RUNLOCK_RUN_ID'], file=sys.stderr, flush=True)")
    done = subprocess.run([RUNLOCK, "--store", str(store.root), "run", "--", sys.executable, "-c", child],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    started = re.fullmatch(r"run:(\w+) started", lines[0])
    assert started and lines[1] == f"child-sees {started.group(1)}"   # printed before the command ran
    as_json = subprocess.run([RUNLOCK, "--store", str(store.root), "run", "--json", "--", sys.executable, "-c", child],
                             capture_output=True, text=True, cwd=tmp_path)
    data = json.loads(as_json.stdout)                        # the command's stdout went to stderr
    assert data["status"] == "finished" and data["returncode"] == 0 and data["lost_points"] == 0
    assert data["recipe_id"] == records.get(store, data["run_id"]).recipe_id and "child-out" in as_json.stderr


README_SETUP = '''
import json, os
os.makedirs("data", exist_ok=True)
words = "refund invoice password login crash shipping upgrade cancel billing export".split()
with open("data/tickets.jsonl", "w") as f:
    for i in range(60):
        text = f"ticket {i}: the {words[i % 10]} page shows error {i * 7919 % 1000} after step {words[(i * 3) % 10]}"
        f.write(json.dumps({"id": f"t{i}", "text": text}) + "\\n")
os.makedirs("out/adapter", exist_ok=True)
open("out/adapter/adapter_model.safetensors", "wb").write(b"weights")
cfg = {"lr": 3e-4, "lora": {"r": 8}}
loader = range(3)
loss, lr, f1, test_f1 = 0.5, 3e-4, 0.9, 0.88
'''


def test_the_readme_quickstart_as_written_under_runlock_run_is_one_run_that_passes_check(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1).replace("        ...\n", "")
    command = re.search(r"runlock run (-p \S+ --hashseed \d+) -- python train\.py", text)
    assert "seed_everything" in code.split("start_run")[0] and command, "the README changed: update this test"
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text(".runlock/\ndata/\nout/\n")
    (repo / "train.py").write_text("import runlock\n" + README_SETUP + code)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "train"], cwd=repo, check=True)
    assert subprocess.run([RUNLOCK, "init"], cwd=repo, capture_output=True).returncode == 0

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([RUNLOCK, *args], cwd=repo, capture_output=True, text=True)

    ran = cli("run", *command.group(1).split(), "--json", "--", sys.executable, "train.py")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    store = runlock.open_store(repo)
    (rec,) = records.list_runs(store)
    assert rec.id == run_id and (rec.project, rec.name, rec.status) == ("support-bot", "lora-r8", "finished")
    verified = cli("verify", run_id, "--in-place", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    checked = cli("check", run_id, "--json")
    report = json.loads(checked.stdout)
    failed = {r["rule"]: r["detail"] for r in report["results"] if not r["passed"]}
    assert checked.returncode == 0 and report["ok"], failed
    seeds = next(r for r in report["results"] if r["rule"] == "seeds-recorded")
    assert seeds["evidence"]["seed"] == 42 and seeds["evidence"]["seeding_report"] and seeds["evidence"]["hashseed"]


def test_a_nested_start_run_under_runlock_run_is_the_same_run_and_leaving_it_only_flushes(
        store: Store, tmp_path: Path) -> None:
    result = run_command(store, script(tmp_path, """
        import runlock
        with runlock.start_run(project="p", name="outer") as outer:
            with runlock.start_run(project="p", name="inner") as inner:
                assert inner is outer
                inner.log({"a": 1.0}, step=0)
            outer.log({"a": 2.0}, step=1)          # still open after the inner block
    """))
    assert result.returncode == 0 and result.status == "finished"
    (rec,) = records.list_runs(store)
    assert [(p.step, p.value) for p in series.points(store, rec.id, keys=["a"])] == [(0, 1.0), (1, 2.0)]
    assert rec.name == "outer"                    # the nested start_run changes nothing


def test_a_command_killed_by_a_signal_fails_the_run_and_exits_as_a_shell_would(store: Store, tmp_path: Path) -> None:
    done = subprocess.run([RUNLOCK, "--store", str(store.root), "run", "--json", "--", "bash", "-c", "kill -9 $$"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 128 + 9, (done.returncode, done.stdout, done.stderr)
    data = json.loads(done.stdout)
    assert data["status"] == "failed" and data["returncode"] == -9
