"""Tiers, first divergence and diagnosis on real runs in the store (SQLite and PostgreSQL), and
the verification tables as migrated."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch  # noqa: F401  (imported before any run: every lock here sees the same torch knobs)
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import runlock
from runlock.audit import audit_log
from runlock.store import METADATA, Store
from runlock.store.schema import edges
from runlock.verify import compare
from runlock.verify.compare import diagnose
from runlock.verify.records import (add_spread, add_verification, best_tier, latest_spread, reproduced,
                                    verifications_of)

MakeRun = Callable[..., str]


@pytest.fixture
def make_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Store], MakeRun]:
    """Factory: ``make_run(store)(series, summary=..., artifact=b"...")`` records a finished run."""
    monkeypatch.chdir(tmp_path)  # outside any git repository: the code section is the same for all

    def bind(store: Store) -> MakeRun:
        def make(series: dict[str, list[float]], *, summary: dict | None = None, artifact: bytes | None = None,
                 config: dict | None = None) -> str:
            with runlock.start_run(project="c", store=store, config=config or {"lr": 0.1}, seed=1,
                                   argv=["train.py"]) as run:
                for key, values in series.items():
                    for step, value in enumerate(values):
                        run.log({key: value}, step=step)
                if summary:
                    run.set_summary(summary)
                if artifact is not None:
                    (tmp_path / "w.bin").write_bytes(artifact)
                    run.log_artifact(tmp_path / "w.bin", name="weights")
            return run.id
        return make

    return bind


LOSS = [1.0, 0.5, 0.25, 0.125]


def test_tiers_from_bitwise_to_different(any_store: Store, make_run: Callable[[Store], MakeRun]) -> None:
    make = make_run(any_store)
    a = make({"loss": LOSS, "nan": [math.nan]}, summary={"acc": 0.8}, artifact=b"w1")
    same = make({"loss": LOSS, "nan": [math.nan]}, summary={"acc": 0.8}, artifact=b"w1")
    close = make({"loss": [v * (1 + 1e-9) for v in LOSS], "nan": [math.nan]}, summary={"acc": 0.8}, artifact=b"w2")
    far = make({"loss": [1.0, 0.5, 0.3, 0.125], "nan": [math.nan]}, summary={"acc": 0.8}, artifact=b"w1")
    found = compare(any_store, a, same)
    assert (found.tier, found.first_divergence, found.diagnosis) == ("bitwise", None, [])
    found = compare(any_store, a, close)
    assert found.tier == "tolerance"  # weights differ in bytes, curves agree within rtol
    assert {o.name: o.tier for o in found.outputs} == {"metric:loss": "tolerance", "metric:nan": "bitwise",
                                                       "summary:acc": "bitwise", "artifact:weights": "different"}
    assert found.first_divergence["metric"] == "loss" and found.first_divergence["step"] == 0
    assert compare(any_store, a, close, rtol=0.0, atol=0.0).tier == "different"
    found = compare(any_store, a, far)
    assert found.tier == "different"
    assert found.first_divergence == {"metric": "loss", "step": 2, "a": 0.25, "b": 0.3}


def test_first_divergence_is_the_earliest_step_over_all_metrics(store: Store, make_run: Callable) -> None:
    make = make_run(store)
    a = make({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 2.0, 3.0]})
    b = make({"a": [1.0, 2.0, 3.0, 9.0], "b": [1.0, 5.0, 3.0]})
    c = make({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 2.0]})
    assert compare(store, a, b).first_divergence == {"metric": "b", "step": 1, "a": 2.0, "b": 5.0}
    assert compare(store, a, c).first_divergence == {"metric": "b", "step": 2, "a": 3.0, "b": None}
    assert compare(store, a, c).tier == "different"  # a missing step is never within tolerance


def test_statistical_tier_uses_the_stored_spread(any_store: Store, make_run: Callable) -> None:
    make = make_run(any_store)
    a = make({"loss": [1.0, 0.5]}, summary={"acc": 0.80})
    near = make({"loss": [1.0, 0.6]}, summary={"acc": 0.82})
    far = make({"loss": [1.0, 0.6]}, summary={"acc": 0.90})
    assert compare(any_store, a, near).tier == "different"  # no spread measured yet
    spread = add_spread(any_store, a, [5, 6], [near, far], {"acc": {"n": 2, "mean": 0.81, "std": 0.01,
                                                                    "min": 0.8, "max": 0.82, "values": [0.8, 0.82]}})
    assert latest_spread(any_store, [near, a]).id == spread.id
    found = compare(any_store, a, near)
    assert found.tier == "statistical" and found.tolerances["spread"] == spread.id
    assert compare(any_store, a, far).tier == "different"  # 0.10 > 3 std
    assert compare(any_store, a, near, k=1.0).tier == "different"  # 0.02 > 1 std


def test_diagnosis_names_the_lock_fields_most_telling_first() -> None:
    base = {"config": {"lr": 0.1, "bs": 8}, "seed": 1, "inputs": [
        {"node": "snapshot:sha256:aa", "id": "sha256:aa", "ref": "ds:train@v1", "kind": "snapshot"},
        {"node": "split:sha256:cc", "id": "sha256:cc", "ref": "split:train@v1", "kind": "split"}],
        "code": {"git": {"commit": "c1", "branch": "main", "diff": None}},
        "knobs": {"torch": {"deterministic_algorithms": True}},
        "environment": {"packages": {"numpy": "2.0.0"}, "python": {"version": "3.11.7"}},
        "entrypoint": {"argv": ["train.py"]}}
    other = {**base, "config": {"lr": 0.2, "bs": 8}, "seed": 2,
             "inputs": [{**base["inputs"][0], "id": "sha256:bb", "ref": "ds:train@v2"},
                        {**base["inputs"][1], "id": "sha256:dd", "ref": "split:train@v2"}],
             "code": {"git": {"commit": "c2", "branch": "dev", "diff": "sha256:ee"}},
             "knobs": {"torch": {"deterministic_algorithms": False}},
             "environment": {"packages": {"numpy": "2.1.0"}, "python": {"version": "3.12.1"}},
             "entrypoint": {"argv": ["train.py", "--fast"]}}
    found = diagnose(base, other)
    assert [(d["kind"], d["field"]) for d in found] == [
        ("config", "config.lr"), ("data", "inputs.ds:train"), ("split", "inputs.split:train"),
        ("code", "code.git.commit"), ("code", "code.git.diff"), ("seed", "seed"),
        ("knob", "knobs.torch.deterministic_algorithms"), ("package", "environment.packages.numpy"),
        ("environment", "environment.python.version"), ("entrypoint", "entrypoint.argv[1]")]
    assert found[1]["a"] == "sha256:aa" and found[1]["b"] == "sha256:bb"  # branch names are not diagnosed


def test_verification_records_edges_and_audit(any_store: Store, make_run: Callable) -> None:
    make = make_run(any_store)
    a, b = make({"loss": LOSS}), make({"loss": LOSS})
    assert best_tier(any_store, a) is None
    add_verification(any_store, a, "rerun", "different", {"tier": "different"}, rerun_id=b)
    v = add_verification(any_store, a, "rerun", "tolerance", {"tier": "tolerance"}, rerun_id=b)
    assert [x.tier for x in verifications_of(any_store, a)] == ["different", "tolerance"]
    assert best_tier(any_store, a) == "tolerance" and reproduced(any_store, b) == [a]
    with any_store.db.read() as conn:
        n_edges = conn.execute(sa.select(sa.func.count()).select_from(edges).where(edges.c.kind == "reproduces")).scalar()
        last = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()
    assert n_edges == 1  # the same rerun is linked once
    assert (last.action, last.target, last.details["verification"]) == ("verification.create", f"run:{a}", v.id)


def test_migrated_verify_tables_match_their_definitions(any_store: Store) -> None:
    mine = {"verifications", "variance_spreads", "rehearsals"}
    with any_store.db.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    assert [d for d in diff if mine & {getattr(x, "name", None) for x in _tables(d)}] == []
    assert mine <= set(METADATA.tables)


def _tables(change: object) -> list:
    items = change if isinstance(change, list) else [change]
    out = []
    for item in items:
        for part in (item if isinstance(item, tuple) else (item,)):
            out.append(getattr(part, "table", part))
    return out
