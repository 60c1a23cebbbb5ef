"""Stage state in the database: one row per stage execution or cache hit, and per-stage locks.

``pipeline_stages`` is the run-cache and the history at once: a row with status ``finished``
says "the stage whose inputs hash to ``stage_key`` ran as ``run_id`` and produced ``outs``"; any
later ``repro``, on this machine or another sharing the store, that computes the same key restores
those outs instead of running the command (a row with status ``cached``, ``source_run`` naming the
run that made them). Rows are only ever inserted and then ended, so two ``repro`` never merge
anything. ``pipeline_locks`` holds one row per stage key being computed: a second ``repro`` that
needs the same stage waits for it, then finds the first one's result in the cache.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from ulid import ULID

from runlock import audit
from runlock.errors import RunlockError, StoreBusy, StoreError
from runlock.store import Store
from runlock.store.schema import ID, METADATA, NAME, TIME, utcnow

stages = sa.Table(
    "pipeline_stages", METADATA,
    sa.Column("id", ID, primary_key=True),
    sa.Column("pipeline", sa.String(1000), nullable=False),   # the pipeline's folder (absolute)
    sa.Column("stage", NAME, nullable=False),
    sa.Column("stage_key", ID, nullable=False),               # sha256 of the stage's inputs document
    sa.Column("status", sa.String(16), nullable=False),       # running|finished|failed|cached
    sa.Column("run_id", ID, nullable=True),                   # the run that executed it
    sa.Column("source_run", ID, nullable=True),               # a cache hit: the run whose outs were restored
    sa.Column("repro_id", ID, nullable=False),                # the `repro` invocation (the pipeline run)
    sa.Column("holder", NAME, nullable=False),                # host:pid of that invocation
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outs", sa.JSON, nullable=False),               # path -> {digest, name}
    sa.Column("restored", sa.JSON, nullable=False),           # outs written back from the store
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("ended_at", TIME, nullable=True),
    sa.Index("ix_pipeline_stages_key", "stage_key", "status"),
    sa.Index("ix_pipeline_stages_stage", "pipeline", "stage"),
)

locks = sa.Table(
    "pipeline_locks", METADATA,
    sa.Column("stage_key", ID, primary_key=True),
    sa.Column("holder", NAME, nullable=False),
    sa.Column("acquired_at", TIME, nullable=False),
)

LOCK_POLL_S = 0.2
DONE = ("finished", "cached")


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(text: str) -> bool:
    """False only when ``text`` names a process on this host that no longer exists."""
    host, _, pid = text.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(pid) != 0


@dataclass(frozen=True)
class StageRow:
    id: str
    pipeline: str
    stage: str
    stage_key: str
    status: str
    run_id: str | None
    source_run: str | None
    repro_id: str
    holder: str
    inputs: dict
    outs: dict
    restored: list
    created_at: str
    ended_at: str | None

    @property
    def made_by(self) -> str | None:
        """The run whose outs these are."""
        return self.source_run or self.run_id

    def to_dict(self) -> dict:
        return asdict(self)


def _row(r: sa.Row) -> StageRow:
    return StageRow(r.id, r.pipeline, r.stage, r.stage_key, r.status, r.run_id, r.source_run, r.repro_id,
                    r.holder, dict(r.inputs or {}), dict(r.outs or {}), list(r.restored or []), r.created_at,
                    r.ended_at)


def cached(store: Store, stage_key: str) -> StageRow | None:
    """The earliest finished execution of this stage key, in any pipeline sharing the store."""
    with store.db.read() as conn:
        r = conn.execute(sa.select(stages).where(stages.c.stage_key == stage_key, stages.c.status == "finished")
                         .order_by(stages.c.created_at, stages.c.id).limit(1)).first()
    return None if r is None else _row(r)


def last(store: Store, pipeline: str, stage: str, statuses: tuple[str, ...] | None = DONE) -> StageRow | None:
    q = sa.select(stages).where(stages.c.pipeline == pipeline, stages.c.stage == stage)
    if statuses:
        q = q.where(stages.c.status.in_(statuses))
    with store.db.read() as conn:
        r = conn.execute(q.order_by(stages.c.created_at.desc(), stages.c.id.desc()).limit(1)).first()
    return None if r is None else _row(r)


def history(store: Store, pipeline: str) -> list[StageRow]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(stages).where(stages.c.pipeline == pipeline)
                            .order_by(stages.c.created_at, stages.c.id)).all()
    return [_row(r) for r in rows]


def begin(store: Store, *, pipeline: str, stage: str, stage_key: str, repro_id: str, inputs: dict) -> str:
    row_id = str(ULID())

    def write(conn: Connection) -> None:
        conn.execute(stages.insert().values(
            id=row_id, pipeline=pipeline, stage=stage, stage_key=stage_key, status="running", run_id=None,
            source_run=None, repro_id=repro_id, holder=holder(), inputs=inputs, outs={}, restored=[],
            created_at=utcnow(), ended_at=None))

    store.db.run_write(write)
    return row_id


def record_hit(store: Store, *, pipeline: str, stage: str, stage_key: str, repro_id: str, inputs: dict,
               hit: StageRow, restored: list[str]) -> None:
    """A cache hit, in one transaction: its row (status ``cached``) and its audit entry."""
    now = utcnow()

    def write(conn: Connection) -> None:
        conn.execute(stages.insert().values(
            id=str(ULID()), pipeline=pipeline, stage=stage, stage_key=stage_key, status="cached", run_id=None,
            source_run=hit.run_id, repro_id=repro_id, holder=holder(), inputs=inputs, outs=hit.outs,
            restored=restored, created_at=now, ended_at=now))
        audit.append(conn, store.actor, "pipeline.cache_hit", f"run:{hit.run_id}", after=stage_key,
                     details={"pipeline": pipeline, "stage": stage, "repro": repro_id, "restored": restored})

    store.db.run_write(write)


def set_run(store: Store, row_id: str, run_id: str) -> None:
    store.db.run_write(lambda conn: conn.execute(stages.update().where(stages.c.id == row_id).values(run_id=run_id)))


def end(store: Store, row_id: str, status: str, *, outs: dict | None = None, source_run: str | None = None,
        restored: list | None = None) -> None:
    def write(conn: Connection) -> None:
        row = conn.execute(sa.select(stages).where(stages.c.id == row_id)).first()
        conn.execute(stages.update().where(stages.c.id == row_id).values(
            status=status, outs=outs or {}, source_run=source_run, restored=restored or [], ended_at=utcnow()))
        target = f"run:{source_run or row.run_id}" if (source_run or row.run_id) else f"pipeline:{row.stage}"
        audit.append(conn, store.actor, "pipeline.cache_hit" if status == "cached" else f"pipeline.stage_{status}",
                     target, after=row.stage_key,
                     details={"pipeline": row.pipeline, "stage": row.stage, "repro": row.repro_id,
                              **({"restored": restored} if status == "cached" else {})})

    store.db.run_write(write)


def interrupted(store: Store, pipeline: str) -> list[StageRow]:
    """Rows still ``running`` whose ``repro`` process is gone (killed)."""
    with store.db.read() as conn:
        rows = conn.execute(sa.select(stages).where(stages.c.pipeline == pipeline, stages.c.status == "running")).all()
    return [_row(r) for r in rows if not holder_alive(r.holder)]


def mark_failed(store: Store, row_id: str) -> None:
    store.db.run_write(lambda conn: conn.execute(
        stages.update().where(stages.c.id == row_id, stages.c.status == "running")
        .values(status="failed", ended_at=utcnow())))


# -- per-stage locks ----------------------------------------------------------------------
def acquire(store: Store, stage_key: str, *, timeout: float = 24 * 3600) -> None:
    """Hold the lock on ``stage_key``, waiting while a live process holds it; a lock whose holder
    died (same host) is taken over."""
    me = holder()
    deadline = time.monotonic() + timeout

    def write(conn: Connection) -> bool:
        row = conn.execute(sa.select(locks).where(locks.c.stage_key == stage_key)).first()
        if row is not None:
            if row.holder == me or holder_alive(row.holder):
                return row.holder == me
            conn.execute(locks.delete().where(locks.c.stage_key == stage_key))
        conn.execute(locks.insert().values(stage_key=stage_key, holder=me, acquired_at=utcnow()))
        return True

    while True:
        try:
            if store.db.run_write(write):
                return
        except StoreBusy:
            pass
        except (sa.exc.IntegrityError, StoreError) as e:   # the driver's error, translated or not
            if not isinstance(e, sa.exc.IntegrityError) and not isinstance(e.__cause__, sa.exc.IntegrityError):
                raise
            # another process inserted the same key between our read and our write: wait for it
        if time.monotonic() > deadline:
            raise RunlockError(f"Timed out waiting for another repro to finish stage key {stage_key}.")
        time.sleep(LOCK_POLL_S)


def release(store: Store, stage_key: str) -> None:
    me = holder()
    store.db.run_write(lambda conn: conn.execute(
        locks.delete().where(locks.c.stage_key == stage_key, locks.c.holder == me)))
