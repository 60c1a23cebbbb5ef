"""Tags, notes and tombstones on runs: allowed on sealed runs, audited, queryable; a deleted run
leaves every list but keeps its record and audit trail; run ids are taken by unique prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

import runlock
from runlock import audit
from runlock.errors import Conflict, InvalidInput, NotFound
from runlock.store import Store
from runlock.tracking import annotations, query, records


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def finished(store: Store, name: str = "r", **kw) -> str:  # noqa: ANN003
    with runlock.start_run(project="p", name=name, store=store, **kw) as run:
        run.log({"loss": 1.0}, step=0)
    return run.id


def actions(store: Store, target: str) -> list[str]:
    return [e.action for e in audit.log(store, target=target)]


def test_tags_on_a_sealed_run_are_audited_queryable_and_leave_the_lock_alone(any_store: Store) -> None:
    run_id = finished(any_store, tags={"stage": "draft"})
    before = records.get(any_store, run_id)
    tags = annotations.tag(any_store, run_id, {"team": "nlp", "stage": "final"})
    assert tags == {"stage": "final", "team": "nlp"}
    after = records.get(any_store, run_id)
    assert after.tags == tags and after.recipe_id == before.recipe_id and after.status == "finished"
    assert [f.record.id for f in query.find_runs(any_store, where="tags.team == 'nlp'")] == [run_id]
    assert query.find_runs(any_store, where="tags.stage == 'draft'") == []
    assert annotations.tag(any_store, run_id[:10], {}, remove=["stage"]) == {"team": "nlp"}
    assert query.find_runs(any_store, where="tags.stage == 'final'") == []
    assert actions(any_store, f"run:{run_id}").count("run.tag") == 2


@pytest.mark.parametrize("pairs", [["novalue"], ["=x"], ["a b=1"]])
def test_malformed_tags_are_refused(pairs: list[str]) -> None:
    with pytest.raises(InvalidInput):
        annotations.parse_tags(pairs)


def test_removing_a_tag_the_run_lacks_changes_nothing(store: Store) -> None:
    run_id = finished(store, tags={"a": "1"})
    with pytest.raises(InvalidInput, match="no tag 'b'"):
        annotations.tag(store, run_id, {"c": "3"}, remove=["b"])
    assert records.get(store, run_id).tags == {"a": "1"}


def test_notes_append_in_order_on_a_sealed_run(store: Store) -> None:
    run_id = finished(store)
    annotations.note(store, run_id, "loss spikes at step 40")
    second = annotations.note(store, run_id, "rerun on A100 matched")
    assert second.seq == 2
    assert [n.text for n in annotations.notes(store, run_id)] == ["loss spikes at step 40", "rerun on A100 matched"]
    assert actions(store, f"run:{run_id}").count("run.note") == 2
    with pytest.raises(InvalidInput):
        annotations.note(store, run_id, "   ")


def test_a_deleted_run_leaves_lists_but_keeps_its_record_and_audit(any_store: Store) -> None:
    keep, gone = finished(any_store, "keep"), finished(any_store, "gone")
    stone = annotations.delete(any_store, gone, reason="bad data")
    assert [r.id for r in records.list_runs(any_store)] == [keep]
    assert [f.record.id for f in query.find_runs(any_store, where="status == 'finished'")] == [keep]
    assert [r.id for r in records.list_runs(any_store, deleted=True)] == [gone]
    rec = records.get(any_store, gone)        # still there, for audit
    assert rec.deleted and rec.deleted_reason == "bad data" and rec.deleted_at == stone.deleted_at
    with any_store.db.read() as conn:
        assert annotations.deleted_ids(conn) == {gone}
    assert "run.delete" in actions(any_store, f"run:{gone}")
    with pytest.raises(Conflict, match="deleted"):
        annotations.tag(any_store, gone, {"a": "b"})
    with pytest.raises(Conflict, match="deleted"):
        annotations.delete(any_store, gone, reason="again")


def test_delete_is_refused_for_a_run_behind_a_registered_model(store: Store, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    (tmp_path / "a.bin").write_bytes(b"adapter")
    with runlock.start_run(project="p", name="base", store=store) as base:
        weights = base.log_artifact(tmp_path / "w.bin", name="model", kind="model")
    with runlock.start_run(project="p", name="tuned", store=store) as tuned:
        tuned.use(f"art:{weights.digest}")
        tuned.log_artifact(tmp_path / "a.bin", name="adapter", kind="model")
    unrelated = finished(store, "unrelated")
    runlock.register_model(tuned, "adapter", name="bot")
    for run_id in (tuned.id, base.id):       # the model's own run, and the run its input came from
        with pytest.raises(Conflict, match="model:bot@v1"):
            annotations.delete(store, run_id, reason="cleanup")
        assert not records.get(store, run_id).deleted
        assert "run.delete" not in actions(store, f"run:{run_id}")
    annotations.delete(store, unrelated, reason="nothing registered downstream")


def test_delete_is_refused_while_running_and_needs_a_reason(store: Store) -> None:
    with runlock.start_run(project="p", store=store) as run:
        with pytest.raises(Conflict, match="still running"):
            annotations.delete(store, run.id, reason="oops")
    with pytest.raises(InvalidInput, match="--reason"):
        annotations.delete(store, run.id, reason=" ")
    assert not records.get(store, run.id).deleted


# -- run ids by prefix ------------------------------------------------------------------------------
def _insert(store: Store, run_id: str) -> None:
    store.db.run_write(lambda conn: records.create(conn, store, run_id=run_id, project="p", name=run_id[-4:],
                                                    pid=1, tags={}, context={}))


def test_a_prefix_with_like_wildcards_matches_only_itself(store: Store) -> None:
    run_id = finished(store)
    for wild in ("%%%%%%", "______", run_id[:6] + "%"):
        with pytest.raises(NotFound):
            records.get(store, wild)
    assert records.get(store, run_id[:8].lower()).id == run_id
    assert records.get(store, f"run:{run_id[:7]}").id == run_id


def test_an_ambiguous_prefix_asks_for_more_characters(store: Store) -> None:
    _insert(store, "01JAAAAAAAAAAAAAAAAAAAAAA1")
    _insert(store, "01JAAAAAAAAAAAAAAAAAAAAAA2")
    with pytest.raises(InvalidInput, match="several runs"):
        records.get(store, "01JAAAAAAA")
    assert records.get(store, "01JAAAAAAAAAAAAAAAAAAAAAA2").name == "AAA2"


def test_short_ids_are_the_shortest_unique_prefix_of_at_least_8(store: Store) -> None:
    ids = ["01JB000000000000000000000A", "01JB0000000000XY00000000AB", "01JB0000000000XZ00000000AC",
           "01JC999999999999999999999Q"]
    for i in ids:
        _insert(store, i)
    short = records.short_ids(store, ids)
    assert short == {ids[0]: "01JB00000000000", ids[1]: "01JB0000000000XY", ids[2]: "01JB0000000000XZ",
                     ids[3]: "01JC9999"}
    assert all(records.get(store, s).id == i for i, s in short.items())


def test_a_deleted_run_is_not_registered_nor_rehearsed_and_lineage_marks_it(store: Store, tmp_path: Path) -> None:
    from runlock import registry
    from runlock.lineage import entities
    from runlock.verify.rehearsal import candidates

    (tmp_path / "w.bin").write_bytes(b"w")
    with runlock.start_run(project="p", name="gone", store=store) as run:
        run.log_artifact(tmp_path / "w.bin", name="weights", kind="model")
    kept = finished(store, "kept")
    annotations.delete(store, run.id, reason="bad data")
    with pytest.raises(Conflict, match="deleted"):
        registry.register(store, run.id, "weights", "bot")
    assert registry.list_models(store) == []
    assert candidates(store) == [kept]
    view = entities.view(store, f"run:{run.id}", "downstream")
    assert view.nodes[f"run:{run.id}"].attrs["deleted_at"] is not None


def test_tags_and_notes_leave_the_sealed_record_intact(store: Store) -> None:
    run_id = finished(store)
    annotations.tag(store, run_id, {"team": "nlp"})
    annotations.note(store, run_id, "checked by hand")
    audit.require_sealed(store, f"run:{run_id}")        # a rerun or an attestation still accepts it
    assert audit.verify(store, deep=True).ok
