"""Wheel hashes looked up at export time (`env export --hashes`), for real against the package
index, and the offline path against an index that nothing answers."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import environment
from runlock.cli.main import app
from runlock.store import Store
from runlock.verify import wheels
from runlock.verify.pylock import index_of
from tests.net import free_port

PACKAGES = {"six": "1.16.0", "idna": "3.7"}


@pytest.fixture
def small_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run whose lock records two distributions from the index (and this interpreter)."""
    env = environment.capture()
    env["packages"] = dict(PACKAGES)
    env.pop("sources", None)
    env.pop("container", None)
    monkeypatch.setattr(environment, "capture", lambda: env)
    monkeypatch.setattr(environment, "local_sources", lambda: {})
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        run.log({"loss": 1.0}, step=0)
    monkeypatch.undo()
    return run.id


def cli(store: Store, *args: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["--store", str(store.root), *args])


@pytest.mark.slow
def test_pylock_with_hashes_names_each_wheel_and_its_sha256(store: Store, small_run: str, tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    res = cli(store, "env", "export", small_run, "--format", "pylock", "--hashes", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "No hash" not in res.output
    lock = tomllib.loads(out.read_text())
    by_name = {p["name"]: p for p in lock["packages"]}
    assert set(by_name) == set(PACKAGES)
    for name, version in PACKAGES.items():
        (wheel,) = by_name[name]["wheels"]
        assert wheel["name"].startswith(f"{name}-{version}-") and wheel["name"].endswith(".whl")
        data = urllib.request.urlopen(wheel["url"], timeout=30).read()          # the index's file, hashed here
        assert hashlib.sha256(data).hexdigest() == wheel["hashes"]["sha256"]
    again = tmp_path / "again.toml"
    assert cli(store, "env", "export", small_run, "--format", "pylock", "--hashes", "-o", str(again)).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_requirements_with_hashes_and_the_dockerfile_requires_them_and_pip_agrees(
        store: Store, small_run: str, tmp_path: Path) -> None:
    reqs, docker = tmp_path / "requirements.lock", tmp_path / "Dockerfile"
    res = cli(store, "env", "export", small_run, "--hashes", "-o", str(reqs), "--container", str(docker))
    assert res.exit_code == 0, res.output
    lines = [x for x in reqs.read_text().splitlines() if not x.startswith("#")]
    assert len(lines) == 2 and all(" --hash=sha256:" in x for x in lines), lines
    assert "--require-hashes -r /tmp/requirements.lock" in docker.read_text()
    # pip itself checks the hashes while downloading exactly those wheels
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", str(reqs),
                           "-d", str(tmp_path / "dl")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "dl").glob("*.whl"))) == 2


def test_offline_leaves_the_hashes_out_and_says_which(store: Store, small_run: str, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/simple"
    reqs, docker = tmp_path / "requirements.lock", tmp_path / "Dockerfile"
    res = cli(store, "env", "export", small_run, "--hashes", "--index-url", nowhere, "-o", str(reqs),
              "--container", str(docker))
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "No hash for 2 distribution(s): idna, six" in said and "unreachable" in said and nowhere in said
    assert "idna==3.7" in reqs.read_text().splitlines() and "--hash" not in reqs.read_text()
    assert "--require-hashes" not in docker.read_text().replace("cannot --require-hashes", "")
    res = cli(store, "env", "export", small_run, "--format", "pylock", "--hashes", "--index-url", nowhere, "--json")
    assert res.exit_code == 0, res.output
    import json
    found = json.loads(res.stdout)
    assert set(found["unhashed"]) == {"idna", "six"} and found["hashed"] == 0
    assert "wheels" not in found["text"]


def test_index_url_without_hashes_is_a_one_line_mistake(store: Store, small_run: str) -> None:
    res = cli(store, "env", "export", small_run, "--index-url", "http://x/simple")
    assert res.exit_code == 2 and "--index-url goes with --hashes" in " ".join(res.output.split())


def test_the_wheel_chosen_is_the_best_fit_for_the_interpreter() -> None:
    sha = "a" * 64
    files = [("pkg-1.0.tar.gz", "u/sdist", sha), ("pkg-1.0-py3-none-any.whl", "u/any", sha),
             ("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "u/cp311", sha),
             ("pkg-0.9-py3-none-any.whl", "u/old", sha), ("pkg-1.0-cp27-cp27m-win32.whl", "u/win", sha)]
    tags = [*wheels.supported_tags("3.11")]
    best = wheels._choose("pkg", "1.0", files, tags)
    here = "u/cp311" if any(str(t) == "cp311-cp311-manylinux_2_17_x86_64" for t in tags) else "u/any"
    assert isinstance(best, wheels.Wheel) and best.url == here
    assert wheels._choose("pkg", "2.0", files, tags) == "the index lists no wheel of version 2.0"
    assert "fits this platform" in wheels._choose("pkg", "1.0", files[4:], tags)
    assert index_of("2.3.0+cu121") == "https://download.pytorch.org/whl/cu121"
