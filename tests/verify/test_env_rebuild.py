"""`runlock env rebuild` on a small real environment: a venv with three packages from the index,
a run recorded with that venv's environment, rebuilt into a new venv, and `env diff --python`
finds no drift."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import environment
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.verify import capture_with, env_diff, rebuild
from tests.net import free_port

PINNED = ("six==1.16.0", "idna==3.7", "packaging==24.1")


@pytest.mark.slow
def test_rebuild_of_a_three_package_venv_has_no_drift(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source-venv"
    subprocess.run([sys.executable, "-m", "venv", str(source)], check=True)
    subprocess.run([str(source / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *PINNED], check=True)
    recorded = capture_with(source / "bin/python")
    assert {k: recorded["packages"][k] for k in ("six", "idna", "packaging")} == \
        {"six": "1.16.0", "idna": "3.7", "packaging": "24.1"}
    assert "sources" not in recorded        # all from the index: nothing extra in the lock, recipe id unchanged
    # the run is recorded here, with the environment of the source venv as its lock's environment
    monkeypatch.setattr(environment, "capture", lambda: recorded)
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        run.log({"loss": 1.0}, step=0)
    monkeypatch.undo()

    assert env_diff(store, run.id).drift    # runlock's own environment is not the recorded one
    target = tmp_path / "rebuilt"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert "pinned by version" in " ".join(res.output.split())   # index wheels have no recorded hash
    assert env_diff(store, run.id, python=target / "bin/python").drift == []
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "diff", run.id,
                                   "--python", str(target / "bin/python")])
    assert res.exit_code == 0 and "identical to the recorded one" in " ".join(res.output.split())

    # --hashes: each wheel's sha256 asked of the index, then pip --require-hashes; still no drift
    hashed = tmp_path / "rebuilt-hashed"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(hashed),
                                   "--hashes", "--json"])
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)
    assert made["require_hashes"] and made["looked_up"] == len(recorded["packages"])
    wanted = (hashed / "runlock-requirements.txt").read_text().splitlines()
    assert wanted and all(" --hash=sha256:" in line for line in wanted)
    assert env_diff(store, run.id, python=hashed / "bin/python").drift == []
    # --pylock: the hashes read from a pylock.toml exported with --hashes (as a bundle carries), no lookup
    lockfile = tmp_path / "pylock.toml"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "export", run.id, "--format", "pylock",
                                   "--hashes", "-o", str(lockfile)])
    assert res.exit_code == 0, res.output
    from_lock = tmp_path / "rebuilt-from-pylock"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(from_lock),
                                   "--pylock", str(lockfile), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["require_hashes"]
    assert (from_lock / "runlock-requirements.txt").read_text() == (hashed / "runlock-requirements.txt").read_text()
    assert env_diff(store, run.id, python=from_lock / "bin/python").drift == []

    with pytest.raises(InvalidInput, match="not an empty folder"):
        rebuild(store, run.id, target)
    (tmp_path / "a-file").write_text("keep me")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        rebuild(store, run.id, tmp_path / "a-file")


def test_rebuild_names_the_python_it_needs(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment.capture()
    env["python"] = {**env["python"], "version": "3.9.1"}
    monkeypatch.setattr(environment, "capture", lambda: env)
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        pass
    monkeypatch.undo()
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(tmp_path / "v")])
    assert res.exit_code == 2 and "recorded Python 3.9.1" in " ".join(res.output.split()) and not (tmp_path / "v").exists()


def test_env_diff_with_a_missing_interpreter_is_one_line(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        pass
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "diff", run.id, "--python", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such interpreter" in " ".join(res.output.split()) and "Traceback" not in res.output


def test_rebuild_with_hashes_none_can_be_found_builds_nothing(store: Store, tmp_path: Path) -> None:
    """An index that does not answer: each distribution is named without a hash, one line, exit 2,
    and no folder is left behind (pip checks hashes for all or for none)."""
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        pass
    target = tmp_path / "v"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(target),
                                   "--hashes", "--index-url", f"http://127.0.0.1:{free_port()}/simple"])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "have no hash, so pip cannot --require-hashes" in out, res.output
    assert "Traceback" not in res.output and not target.exists()


def test_index_url_without_hashes_is_refused(store: Store, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "rebuild", "whatever", "-o", str(tmp_path / "v"),
                                   "--index-url", "http://127.0.0.1:1/simple"])
    assert res.exit_code == 2 and "--index-url goes with --hashes" in res.output


def test_rebuild_from_a_pylock_without_hashes_or_of_another_environment_builds_nothing(
        store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        pass
    lockfile = tmp_path / "pylock.toml"
    res = CliRunner().invoke(app, ["--store", str(store.root), "env", "export", run.id, "--format", "pylock",
                                   "-o", str(lockfile)])            # no --hashes: no wheel hash inside
    assert res.exit_code == 0, res.output
    target = tmp_path / "v"
    rebuild_cli = ["--store", str(store.root), "env", "rebuild", run.id, "-o", str(target), "--pylock", str(lockfile)]
    res = CliRunner().invoke(app, rebuild_cli)
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "pylock.toml has no wheel hash for it" in out and not target.exists(), res.output
    text = lockfile.read_text()
    name, version = next((line.split(" = ")[1].strip('"'), None) for line in text.splitlines()
                         if line.startswith("name = "))
    lockfile.write_text(text.replace(f'name = "{name}"\nversion = "', f'name = "{name}"\nversion = "0.0.0.dev0+', 1))
    res = CliRunner().invoke(app, rebuild_cli)
    assert res.exit_code == 2 and "locks another environment" in " ".join(res.output.split()), res.output
    lockfile.write_text("not [toml")
    res = CliRunner().invoke(app, rebuild_cli)
    assert res.exit_code == 2 and "is not a pylock.toml" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, [*rebuild_cli, "--hashes"])
    assert res.exit_code == 2 and "give one of them" in " ".join(res.output.split())
    assert not target.exists()
