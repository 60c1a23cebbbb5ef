"""Where each distribution came from (PEP 610 direct_url.json), and the run's environment
exported as a PEP 751 pylock.toml, a CycloneDX SBOM and a Dockerfile."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import environment
from runlock.cli.main import app
from runlock.store import Store
from runlock.verify import export_lockfile, export_requirements
from runlock.verify.envlock import diff_environments

SHA = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIRECT = {
    "gitpkg": {"url": "https://github.com/ex/gitpkg.git", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
    "wheelpkg": {"url": "https://files.example/wheelpkg-2.0-py3-none-any.whl",
                 "archive_info": {"hashes": {"sha256": SHA}}},
    "oldhash": {"url": "https://files.example/oldhash-1.0.tar.gz", "archive_info": {"hash": f"sha256={SHA}"}},
    "nohash": {"url": "https://files.example/nohash-1.0.tar.gz", "archive_info": {}},
    "localpkg": {"url": "file:///src/my%20pkg", "dir_info": {"editable": True}},
    "broken": "not json {",
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site-packages folder on sys.path with one distribution per kind of source, and one from an index."""
    root = tmp_path / "site"
    for name, direct in {**DIRECT, "fromindex": None}.items():
        info = root / f"{name}-1.5.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.5\n")
        if direct is not None:
            (info / "direct_url.json").write_text(direct if isinstance(direct, str) else json.dumps(direct))
    monkeypatch.syspath_prepend(str(root))
    return root


def test_sources_record_vcs_directory_and_only_recorded_hashes(site: Path) -> None:
    src = environment.sources()
    assert src["gitpkg"] == {"vcs": "git", "url": "https://github.com/ex/gitpkg.git", "commit": COMMIT}
    assert src["wheelpkg"] == {"url": DIRECT["wheelpkg"]["url"], "sha256": SHA}
    assert src["oldhash"]["sha256"] == SHA                      # the deprecated archive_info.hash form
    assert src["nohash"] == {"url": DIRECT["nohash"]["url"]}    # no hash recorded: none invented
    assert src["localpkg"] == {"directory": "/src/my pkg", "editable": True}
    assert "fromindex" not in src and "broken" not in src       # index: no entry; unreadable: skipped
    env = environment.capture()
    # the lock keeps what means the same on every machine; a local folder is a path, not content
    assert env["sources"] == {k: v for k, v in src.items() if "directory" not in v}
    assert "localpkg" not in env["sources"] and env["packages"]["fromindex"] == "1.5"


def test_a_change_of_source_is_package_drift(site: Path) -> None:
    env = environment.capture()
    moved = json.loads(json.dumps(env))
    moved["sources"]["gitpkg"]["commit"] = "f" * 40
    assert [(d.group, d.field) for d in diff_environments(env, moved)] == [("packages", "sources.gitpkg.commit")]


@pytest.fixture
def run_id(store: Store, site: Path) -> str:
    with runlock.start_run(project="p", store=store, argv=["train.py"]) as run:
        run.log({"loss": 1.0}, step=0)
    return run.id


def test_pylock_has_the_keys_pep_751_requires(store: Store, run_id: str) -> None:
    lock = tomllib.loads(export_lockfile(store, run_id, "pylock").text)
    assert lock["lock-version"] == "1.0" and lock["created-by"] == "runlock"
    assert lock["requires-python"] == "==" + environment.python_info()["version"]
    by_name = {p["name"]: p for p in lock["packages"]}
    assert set(by_name) == set(environment.distributions())
    sources = ("vcs", "directory", "archive", "sdist", "wheels")
    for p in lock["packages"]:
        assert sum(k in p for k in sources) <= 1, p             # the source keys are mutually exclusive
        if "vcs" in p or "directory" in p:
            assert "version" not in p                           # a source tree's version is not locked
        if "archive" in p:
            assert p["archive"]["hashes"]                       # archives and wheels need hashes
    assert by_name["gitpkg"]["vcs"] == {"type": "git", "url": "https://github.com/ex/gitpkg.git", "commit-id": COMMIT}
    assert by_name["wheelpkg"]["archive"]["hashes"] == {"sha256": SHA}
    assert by_name["localpkg"]["directory"] == {"path": "/src/my pkg", "editable": True}
    assert by_name["fromindex"] == {"name": "fromindex", "version": "1.5", "index": "https://pypi.org/simple"}
    assert by_name["nohash"] == {"name": "nohash", "version": "1.5"}  # no hash, so no archive table


def test_cyclonedx_sbom_passes_the_librarys_schema_validation(store: Store, run_id: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    found = export_lockfile(store, run_id, "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(found.text) is None
    comps = {c["name"]: c for c in json.loads(found.text)["components"]}
    assert comps["fromindex"]["purl"] == "pkg:pypi/fromindex@1.5"
    assert comps["wheelpkg"]["hashes"] == [{"alg": "SHA-256", "content": SHA}]
    assert COMMIT in comps["gitpkg"]["purl"] and comps["gitpkg"]["externalReferences"][0]["type"] == "vcs"
    assert found.hashed == 2   # wheelpkg, oldhash


def test_requirements_pin_sources_and_hashes_and_the_container_says_why_no_require_hashes(
        store: Store, run_id: str) -> None:
    found = export_requirements(store, run_id)
    lines = found.text.splitlines()
    assert f"gitpkg @ git+https://github.com/ex/gitpkg.git@{COMMIT}" in lines
    # not every line can have a hash, and one --hash would make pip demand one on every line: the
    # known hash stays as a note, so `pip install --no-deps -r` (what the file says) works
    assert f"wheelpkg @ {DIRECT['wheelpkg']['url']}  # sha256:{SHA}" in lines
    assert "--hash" not in found.text
    assert "-e /src/my pkg" in lines and "fromindex==1.5" in lines
    assert "RUN pip install --no-cache-dir --no-deps -r /tmp/requirements.lock" in found.container
    assert "cannot --require-hashes" in found.container


def test_container_requires_hashes_when_every_distribution_has_one() -> None:
    from runlock.verify.envlock import container_recipe, requirement_lines

    lines, hashed = requirement_lines({"wheelpkg": "2.0"}, {"wheelpkg": {"url": "https://x/w.whl", "sha256": SHA}})
    assert hashed and lines == [f"wheelpkg @ https://x/w.whl --hash=sha256:{SHA}"]
    assert "pip install --no-cache-dir --no-deps --require-hashes -r" in container_recipe({}, require_hashes=True)


def test_cli_writes_pylock_and_refuses_an_unknown_format(store: Store, run_id: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--store", str(store.root)]
    out = tmp_path / "pylock.toml"
    res = runner.invoke(app, [*base, "env", "export", run_id, "--format", "pylock", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert tomllib.loads(out.read_text())["lock-version"] == "1.0"
    res = runner.invoke(app, [*base, "env", "export", run_id, "--format", "spdx"])
    assert res.exit_code == 2 and "--format 'spdx' is not known" in res.output
    res = runner.invoke(app, [*base, "env", "export", run_id, "--format", "pylock", "--container", str(tmp_path / "D")])
    assert res.exit_code == 2 and not (tmp_path / "D").exists()


def test_the_sbom_is_the_same_bytes_twice_with_a_serial_from_the_run(store: Store, run_id: str) -> None:
    from runlock.tracking import records
    from runlock.verify.pylock import serial

    a, b = export_lockfile(store, run_id, "cyclonedx").text, export_lockfile(store, run_id, "cyclonedx").text
    assert a == b
    rec = records.get(store, run_id)
    doc = json.loads(a)
    assert doc["serialNumber"] == f"urn:uuid:{serial(rec.id, rec.recipe_id)}"
    assert doc["metadata"]["timestamp"].startswith(rec.ended_at[:19])
