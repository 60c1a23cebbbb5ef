"""What people add to a run after the fact: tags, notes, and the tombstone of a deleted run.

None of these changes a run's lock, metrics or outputs, so all three are allowed on a sealed run;
each is audited (``run.tag``, ``run.note``, ``run.delete``) in the transaction that makes it.

- Tags are ``key -> string`` in ``runs.tags`` and in the query index (section ``tags``), so
  ``runs list --where "tags.team == 'nlp'"`` finds them. ``tag`` merges, ``remove`` drops keys.
- Notes are free text, appended (never edited) to ``run_notes`` with who wrote them and when.
- ``delete`` writes a tombstone (``runs.deleted_at``, ``deleted_by``, ``deleted_reason``): the
  run disappears from lists and queries but its record, lock, lineage and audit entries stay.
  It is refused while the run is running and for a run that a registered model version was built
  from (anywhere downstream in the lineage). Deleting removes no bytes; the tombstone is what
  garbage collection needs to release a deleted run's objects (lock, diff, artifacts) once no
  live run, snapshot, split or model references them (``deleted_ids`` gives the set).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, canonical, lineage
from runlock.errors import Conflict, InvalidInput, NotFound
from runlock.store import Store
from runlock.store.schema import ID, METADATA, NAME, TIME, runs, utcnow
from runlock.tracking import fields, records

MAX_KEY = 250
MAX_VALUE = 5000
MAX_NOTE = 100_000

run_notes = sa.Table(
    "run_notes", METADATA,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),       # 1, 2, … per run, in the order written
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "seq", name="pk_run_notes"),
)


@dataclass(frozen=True)
class Note:
    run_id: str
    seq: int
    text: str
    created_at: str
    created_by: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class Tombstone:
    run_id: str
    deleted_at: str
    deleted_by: str
    reason: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``["team=nlp", "stage=ablation"]`` -> ``{"team": "nlp", "stage": "ablation"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"Tag {pair!r} has no '='; write KEY=VALUE (e.g. team=nlp).")
        out[_check_key(key.strip())] = value
    return out


def _check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or any(c.isspace() for c in key):
        raise InvalidInput(f"Tag key {key!r} is not allowed; use 1-{MAX_KEY} characters without spaces.")
    return key


def tag(store: Store, ref: str, values: dict[str, str], *, remove: list[str] | tuple[str, ...] = ()) -> dict:
    """Set tags on a run (sealed or not) and drop the keys in ``remove``; return all its tags."""
    if not values and not remove:
        raise InvalidInput("Give at least one KEY=VALUE to set or --remove KEY to drop.")
    for key, value in values.items():
        _check_key(key)
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise InvalidInput(f"Tag {key!r}: a value is a string of at most {MAX_VALUE} characters.")
    for key in remove:
        _check_key(key)
    rec = records.get(store, ref)

    def write(conn: Connection) -> dict:
        row = _live(conn, rec.id)
        before = dict(row.tags or {})
        missing = [k for k in remove if k not in before]
        if missing:
            raise InvalidInput(f"run:{rec.id} has no tag {', '.join(map(repr, missing))}; "
                               f"its tags: {', '.join(sorted(before)) or 'none'}.")
        after = canonical.normalize({**{k: v for k, v in before.items() if k not in remove}, **values})
        conn.execute(runs.update().where(runs.c.id == rec.id).values(tags=after))
        fields.replace_section(conn, rec.id, "tags", after)
        audit.append(conn, store.actor, "run.tag", rec.ref,
                     details={"set": canonical.normalize(values), "removed": sorted(remove)})
        return after

    return store.db.run_write(write)


def note(store: Store, ref: str, text: str) -> Note:
    """Append a note to a run (sealed or not)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("A note needs some text: runlock runs note RUN \"what you found\".")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"A note holds at most {MAX_NOTE} characters; this one has {len(text)}.")
    rec = records.get(store, ref)

    def write(conn: Connection) -> Note:
        _live(conn, rec.id)
        last = conn.execute(sa.select(sa.func.max(run_notes.c.seq)).where(run_notes.c.run_id == rec.id)).scalar()
        row = Note(rec.id, (last or 0) + 1, text, utcnow(), store.actor)
        conn.execute(run_notes.insert().values(**row.to_dict()))
        audit.append(conn, store.actor, "run.note", rec.ref, after=canonical.digest({"note": text}),
                     details={"seq": row.seq})
        return row

    return store.db.run_write(write)


def notes(store: Store, run_id: str) -> list[Note]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(run_notes).where(run_notes.c.run_id == run_id).order_by(run_notes.c.seq))
        return [Note(r.run_id, r.seq, r.text, r.created_at, r.created_by) for r in rows]


def delete(store: Store, ref: str, *, reason: str) -> Tombstone:
    """Tombstone a run: hidden from lists, kept for audit; refused while it runs or when a
    registered model version was built from it."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Say why with --reason: a deletion is audited.")
    rec = records.get(store, ref)

    def write(conn: Connection) -> Tombstone:
        row = _live(conn, rec.id)
        if row.status == "running":
            raise Conflict(f"run:{rec.id} is still running; end it (or wait for it to end) before "
                                "deleting it.")
        models = models_built_from(conn, rec.id)
        if models:
            raise Conflict(f"run:{rec.id} cannot be deleted: registered model version(s) "
                                f"{', '.join(models)} were built from it. A registered model's history "
                                "is kept whole.")
        stone = Tombstone(rec.id, utcnow(), store.actor, reason.strip())
        conn.execute(runs.update().where(runs.c.id == rec.id, runs.c.deleted_at.is_(None)).values(
            deleted_at=stone.deleted_at, deleted_by=stone.deleted_by, deleted_reason=stone.reason))
        audit.append(conn, store.actor, "run.delete", rec.ref, before=row.recipe_id,
                     details={"reason": stone.reason, "project": row.project})
        return stone

    return store.db.run_write(write)


def models_built_from(conn: Connection, run_id: str, depth: int = 20) -> list[str]:
    """Every model version downstream of the run in the lineage graph (its outputs registered,
    or outputs of runs built on its outputs, or of its reruns)."""
    seen, frontier, found = {f"run:{run_id}"}, [f"run:{run_id}"], []
    for _ in range(depth):
        nxt = []
        for e in lineage.neighbours(conn, frontier, "downstream"):
            if e.src not in seen:
                seen.add(e.src)
                nxt.append(e.src)
                if e.src.startswith("model:"):
                    found.append(e.src[len("model:"):])
        if not nxt:
            break
        frontier = nxt
    return sorted(f"model:{m}" for m in found)


def deleted_ids(conn: Connection) -> set[str]:
    """The ids of every deleted run (for garbage collection: these no longer keep objects alive)."""
    return set(conn.execute(sa.select(runs.c.id).where(runs.c.deleted_at.is_not(None))).scalars())


def _live(conn: Connection, run_id: str) -> sa.Row:
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound("run", run_id)
    if row.deleted_at is not None:
        raise Conflict(f"run:{run_id} was deleted on {row.deleted_at[:19]} by {row.deleted_by} "
                           f"({row.deleted_reason}); a deleted run is kept for audit only.")
    return row
