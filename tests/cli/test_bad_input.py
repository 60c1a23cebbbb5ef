"""Bad input and damaged stores (issue 12, section 7): each case ends in one line on stderr, exit
status 2 for a usage error, no traceback, and the store exactly as it was (rows and objects)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import runlock
from runlock import audit, canonical
from runlock.cli.main import app
from runlock.data import strategies
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.verify.compare import check_tolerances
from tests.pg import new_database

runner = CliRunner()
BIG = "99999999999999999999"


def store_digest(root: Path) -> str:
    """Every row of every table of the store's SQLite database, and every file name and size of
    its objects, keys and configuration (the stat cache and scratch files are not the store)."""
    h = hashlib.sha256()
    con = sqlite3.connect(f"file:{root / 'runlock.db'}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            for row in con.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                h.update(repr((table, row)).encode())
    finally:
        con.close()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("cache", "tmp") and not p.name.startswith("runlock.db"):
            h.update(f"{rel} {p.stat().st_size}\n".encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store holding a run with metrics and a model artifact, a table snapshot, a split and a
    registered model; plus the bad files the cases hand to commands."""
    base = tmp_path_factory.mktemp("bad-input")
    (base / "ws").mkdir()
    store = runlock.init(base / "ws")
    table = base / "t.jsonl"
    table.write_text("".join(json.dumps({"id": i, "text": f"row {i}", "y": i % 2}) + "\n" for i in range(40)))
    snap = runlock.snapshot(table, name="t", id_column="id", store=store)
    runlock.split(snap, name="t", ratios=(0.8, 0.1, 0.1), seed=1, store=store)
    weights = base / "m.bin"
    weights.write_bytes(b"weights")
    with runlock.start_run(project="p", name="a", config={"lr": 0.1}, store=store) as run:
        run.log({"loss": 1.0}, step=0)
        run.log_artifact(weights, name="m", kind="model")
    runlock.register_model(run.id, "m", "mm", store=store)
    store.close()
    runlock.open_store(base / "ws").close()   # opening settles what opening does (checkpoints)
    files = {
        "deep_jsonl": '{"id": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        "deep.yaml": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "surrogate.jsonl": '{"id": 1, "t": "\\ud800"}\n',
    }
    for name, text in files.items():
        (base / name.replace("_jsonl", ".jsonl")).write_text(text)
    for name in ("binary.yaml", "binary.toml", "binary.intoto.jsonl"):
        (base / name).write_bytes(bytes(range(256)) * 16)
    (base / "folder").mkdir()
    pub = base / "store.pub"
    assert runner.invoke(app, ["--store", str(base / "ws"), "keys", "export-public", "-o", str(pub)]).exit_code == 0
    return {"base": base, "root": base / "ws" / ".runlock", "run": run.id, "pub": pub}


def cases(w: dict) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments after --store, a phrase the one line must hold)."""
    b, run = w["base"], w["run"]
    return {
        "runs list --limit huge": (["runs", "list", "--limit", BIG], "out of range"),
        "audit log --limit huge": (["audit", "log", "--limit", BIG], "out of range"),
        "artifacts list --limit huge": (["artifacts", "list", "--limit", BIG], "out of range"),
        "metrics --rank huge": (["metrics", run, "--rank", BIG], "out of range"),
        "audit proof huge": (["audit", "proof", BIG], "out of range"),
        "tokens issue --days huge": (["tokens", "issue", "bob", "--days", BIG], "out of range"),
        "tokens issue --days 10**6": (["tokens", "issue", "bob", "--days", "1000000"], "1 to 36500 days"),
        "lineage --depth huge": (["lineage", f"run:{run}", "--depth", BIG], "out of range"),
        "split create --ratios inf": (["split", "create", "ds:t", "--name", "x", "--ratios", "inf"], "not infinite"),
        "split create 10,000 ratios": (["split", "create", "ds:t", "--name", "x", "--ratios",
                                        ",".join(["0.0001"] * 10_000)], "at most 100 partitions"),
        "data snapshot deep JSONL": (["data", "snapshot", str(b / "deep.jsonl"), "--id-column", "id"],
                                     "nested too deeply"),
        "data snapshot lone surrogate": (["data", "snapshot", str(b / "surrogate.jsonl"), "--id-column", "id"],
                                         "lone surrogate"),
        "config resolve deep YAML": (["config", "resolve", str(b / "deep.yaml")], "nests too deeply"),
        "config resolve deep JSON": (["config", "resolve", str(b / "deep.json")], "nests too deeply"),
        "config resolve deep --set key": (["config", "resolve", "--set", ".".join(["a"] * 100_000) + "=1"],
                                          "nests too deeply"),
        "config resolve deep --set value": (["config", "resolve", "--set", "a=" + "[" * 100_000], "nests too deeply"),
        "check binary YAML policy": (["check", run, "--policy", str(b / "binary.yaml")], "not UTF-8"),
        "check binary TOML policy": (["check", run, "--policy", str(b / "binary.toml")], "not UTF-8"),
        "attest verify binary": (["attest", "verify", str(b / "binary.intoto.jsonl"), "--key", str(w["pub"])],
                                 "not an attestation"),
        "attest gate binary": (["attest", "gate", "model:mm@v1", "--attestation", str(b / "binary.intoto.jsonl")],
                               "not an attestation"),
        "env export -o FOLDER": (["env", "export", run, "-o", str(b / "folder")], "is a folder"),
        "data checkout into /proc": (["data", "checkout", "ds:t", "/proc/runlock-test"], "/proc"),
        "compare --rtol inf": (["compare", run, run, "--rtol", "inf"], "not a finite number"),
        "compare --atol nan": (["compare", run, run, "--atol", "nan"], "not a finite number"),
        "compare --k -1": (["compare", run, run, "--k", "-1"], "not a tolerance"),
        "unknown option": (["audit", "proof", "-1"], "No such option"),
        "missing argument": (["runs", "show"], "Missing argument"),
    }


CASES = list(cases({"base": Path("/b"), "run": "r", "pub": Path("/p")}))


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_exit_2_and_the_store_is_unchanged(world: dict, name: str) -> None:
    args, phrase = cases(world)[name]
    before = store_digest(world["root"])
    result = runner.invoke(app, ["--store", str(world["root"]), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert store_digest(world["root"]) == before


@pytest.mark.parametrize("ref", ["______" + "_" * 20, "%" * 8, "{head}%%%%", "run:______", "{head}____%"])
def test_wildcards_in_a_run_reference_are_literal(world: dict, ref: str) -> None:
    ref = ref.format(head=world["run"][:3])   # would match the run, were % and _ wildcards
    shown = runner.invoke(app, ["--store", str(world["root"]), "runs", "show", ref])
    assert shown.exit_code == 1 and "No run" in shown.stderr, shown.output
    listed = runner.invoke(app, ["--store", str(world["root"]), "artifacts", "list", "--run", ref, "--json"])
    assert listed.exit_code != 0 or json.loads(listed.stdout) == []


def test_an_underscore_in_an_audit_action_filter_is_literal(world: dict) -> None:
    store = runlock.open_store(world["root"])
    try:
        assert audit.log(store, action="model.*")            # the wildcard still works
        assert audit.log(store, action="model_register") == []
        assert audit.log(store, action="%") == []
    finally:
        store.close()


OUTPUTS = {
    "metrics --csv": lambda w, o: ["metrics", w["run"], "--csv", "-o", o],
    "plot": lambda w, o: ["plot", w["run"], "-k", "loss", "-o", o],
    "env export": lambda w, o: ["env", "export", w["run"], "-o", o],
    "env export --container": lambda w, o: ["env", "export", w["run"], "-o", o + ".txt", "--container", o],
    "audit proof": lambda w, o: ["audit", "proof", "1", "-o", o],
    "keys export-public": lambda w, o: ["keys", "export-public", "-o", o],
    "attest create": lambda w, o: ["attest", "create", "model:mm@v1", "-o", o],
    "lineage": lambda w, o: ["lineage", f"run:{w['run']}", "-f", "json", "-o", o],
    "split export": lambda w, o: ["split", "export", "split:t@v1", "-o", o],
    "registry card": lambda w, o: ["registry", "card", "model:mm@v1", "-o", o],
    "bundle export": lambda w, o: ["bundle", "export", "model:mm@v1", "-o", o],
    "pipeline show": lambda w, o: ["pipeline", "show", "-C", str(w["base"] / "folder"), "-o", o],
    "pipeline export": lambda w, o: ["pipeline", "export", "-C", str(w["base"] / "folder"), "-o", o],
}
REFUSAL_ONLY = {"pipeline show", "pipeline export"}   # writing needs a runlock.yaml; refusing does not


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_every_output_file_is_kept_unless_force(world: dict, tmp_path: Path, name: str) -> None:
    out = tmp_path / ("out.png" if name == "plot" else "out.txt")
    out.write_text("keep me\n")
    args = OUTPUTS[name](world, str(out))
    refused = runner.invoke(app, ["--store", str(world["root"]), *args])
    assert refused.exit_code != 0 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert out.read_text() == "keep me\n"
    if name in REFUSAL_ONLY:
        return
    if name == "plot":
        pytest.importorskip("matplotlib")
    forced = runner.invoke(app, ["--store", str(world["root"]), *args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != b"keep me\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_every_dash_o_option_is_covered_above() -> None:
    """Every command of the app's tree with ``-o`` is in OUTPUTS, so it is shown to refuse to overwrite."""
    def walk(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
        for name in group.list_commands(None):
            cmd = group.commands[name]
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*prefix, name))
            elif any("-o" in getattr(p, "opts", ()) for p in cmd.params):
                yield " ".join((*prefix, name))

    # env rebuild's -o is a new folder, refused unless empty (tests/verify/test_env_rebuild.py)
    covered = {name.split(" --")[0] for name in OUTPUTS} | {"env rebuild"}
    assert set(walk(get_command(app))) <= covered


# -- init -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["sqlite", "sqlite://", "sqlite:///relative.db", "mysql://u@h/db", "not a url"])
def test_init_with_a_bad_database_url_leaves_nothing_behind(tmp_path: Path, url: str) -> None:
    result = runner.invoke(app, ["init", str(tmp_path), "--database", url])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert list(tmp_path.iterdir()) == []


def test_init_that_cannot_reach_its_database_leaves_nothing_behind(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path), "--database", "postgresql+psycopg://nobody@127.0.0.1:1/x"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_half_made_store_is_repaired_by_init(tmp_path: Path) -> None:
    """What `init DIR --database sqlite` used to leave: a config naming an unusable database."""
    root = tmp_path / ".runlock"
    (root / "objects").mkdir(parents=True)
    (root / "config.toml").write_text('# runlock store configuration\ndatabase = "sqlite"\n')
    assert runner.invoke(app, ["--store", str(tmp_path), "runs", "list"]).exit_code != 0
    fixed = runner.invoke(app, ["init", str(tmp_path)])
    assert fixed.exit_code == 0, fixed.output
    assert "database" not in (root / "config.toml").read_text()
    listed = runner.invoke(app, ["--store", str(tmp_path), "runs", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_init_does_not_silently_move_an_existing_store(tmp_path: Path) -> None:
    runlock.init(tmp_path).close()
    moved = runner.invoke(app, ["init", str(tmp_path), "--database", f"sqlite:///{tmp_path / 'other.db'}"])
    assert moved.exit_code == 1 and "does not move it" in moved.stderr
    assert not (tmp_path / "other.db").exists()


@pytest.mark.postgres
def test_eight_processes_initialising_one_fresh_postgresql_store_all_succeed(tmp_path: Path,
                                                                             pg_base_url: str) -> None:
    url = new_database(pg_base_url)
    code = "import sys; from runlock.cli.main import main; sys.argv[0] = 'runlock'; main()"
    folders = [tmp_path / f"client{i}" for i in range(4)] + [tmp_path / "shared"] * 4
    for f in folders:
        f.mkdir(exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", code, "init", str(f), "--database", url, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in folders]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    assert all(rc == 0 for _, rc in results), [err for (_, err), rc in results if rc]
    ids = {json.loads(out)["store_id"] for (out, _), _ in results}
    assert len(ids) == 1                                  # one store, however many clients made it
    keyids = {json.loads(runner.invoke(app, ["--store", str(f), "keys", "show", "--json"]).stdout)["key_id"]
              for f in folders}
    assert len(keyids) == 1


# -- damaged databases ----------------------------------------------------------------------------
def _damage(db: Path, how: str) -> None:
    for side in (db.with_name("runlock.db-wal"), db.with_name("runlock.db-shm")):
        side.unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    if how == "truncated":
        db.write_bytes(bytes(data[:5000]))
    elif how == "overwritten":
        data[100:4000] = os.urandom(3900)
        db.write_bytes(bytes(data))
    elif how == "not a database":
        db.write_bytes(b"this is not SQLite" * 1000)
    elif how == "emptied":
        db.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "overwritten", "not a database", "emptied"])
def test_a_damaged_database_is_one_line_naming_the_file_and_what_to_do(store: Store, how: str) -> None:
    with runlock.start_run(project="p", store=store) as run:
        run.log({"loss": 1.0}, step=0)
    store.close()
    db = store.root / "runlock.db"
    _damage(db, how)
    damaged = db.read_bytes()
    for args in (["runs", "list"], ["fsck"]):
        result = runner.invoke(app, ["--store", str(store.root), *args])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(db) in lines[0] and "backup" in lines[0], result.stderr
    again = runner.invoke(app, ["init", str(store.root)])   # init must not paper over it either
    assert again.exit_code == 1 and str(db) in again.stderr
    if how == "emptied":   # opening an empty file only gives it SQLite's header: still no table
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    else:
        assert db.read_bytes() == damaged


# -- the library under the commands ---------------------------------------------------------------
def test_canonical_json_refuses_lone_surrogates_and_deep_nesting() -> None:
    with pytest.raises(InvalidInput, match="lone surrogate"):
        canonical.dumps({"k": "a\ud800"})
    with pytest.raises(InvalidInput, match="lone surrogate"):
        canonical.dumps({"\udfff": 1})
    deep: list = []
    for _ in range(canonical.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nests deeper"):
        canonical.dumps(deep)
    with pytest.raises(ValueError, match="nested too deeply"):
        canonical.loads("[" * 100_000 + "]" * 100_000)
    ok: list = []
    for _ in range(canonical.MAX_DEPTH - 1):
        ok = [ok]
    assert canonical.loads(canonical.dumps(ok)) == ok


def test_ratios_whose_weights_would_overflow_are_refused() -> None:
    with pytest.raises(InvalidInput, match="common denominator"):
        strategies.check_ratios([0.1234567, 0.2345671, 0.3456781, 1 - 0.1234567 - 0.2345671 - 0.3456781])
    assert strategies.check_ratios([0.8, 0.1, 0.1])[0] == (8, 1, 1)


@pytest.mark.parametrize("bad", [{"rtol": float("inf")}, {"atol": float("nan")}, {"k": -1.0}, {"rtol": -0.1}])
def test_comparison_tolerances_are_finite_and_not_negative(bad: dict) -> None:
    with pytest.raises(InvalidInput, match="not a tolerance"):
        check_tolerances(**bad)
