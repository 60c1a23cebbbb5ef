"""Run records in the metadata store: create, read, list, seal, and detect crashed runs.

A run is ``running`` until it ends as ``finished``, ``failed`` (with its traceback) or
``crashed`` (its process died: its pid is gone on this host, or its heartbeat stopped elsewhere).
An ended run is sealed: ``end`` only ever moves a run out of ``running``, and every other write
checks the status in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, sealed
from runlock.errors import InvalidInput, NotFound, SealedError
from runlock.store import Store
from runlock.store.schema import metrics, runs, utcnow
from runlock.tracking import rollups

STATUSES = ("running", "finished", "failed", "crashed")
ENDED = ("finished", "failed", "crashed")
MIN_PREFIX = 6          # the shortest run id prefix a reference may give
SHORT_ID = 8            # the shortest prefix a table shows
HEARTBEAT_SECONDS = 10.0
STALE_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class RunRecord:
    id: str
    project: str
    name: str
    status: str
    recipe_id: str | None
    created_by: str
    started_at: str
    ended_at: str | None
    heartbeat_at: str | None
    host: str
    pid: int | None
    last_step: int | None
    summary: dict
    tags: dict
    error: str | None
    context: dict
    deleted_at: str | None = None       # a tombstone: hidden from lists, kept for audit
    deleted_by: str | None = None
    deleted_reason: str | None = None

    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    @property
    def lineage_node(self) -> str:
        return f"run:{self.id}"

    @property
    def sealed(self) -> bool:
        return self.status in ENDED

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def from_row(row: sa.Row) -> RunRecord:
    return RunRecord(
        id=row.id, project=row.project, name=row.name, status=row.status, recipe_id=row.recipe_id,
        created_by=row.created_by, started_at=row.started_at, ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at, host=row.host, pid=row.pid, last_step=row.last_step,
        summary=dict(row.summary or {}), tags=dict(row.tags or {}), error=row.error,
        context=dict(row.context or {}), deleted_at=row.deleted_at, deleted_by=row.deleted_by,
        deleted_reason=row.deleted_reason,
    )


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def create(conn: Connection, store: Store, *, run_id: str, project: str, name: str, pid: int,
           tags: dict, context: dict) -> None:
    now = utcnow()
    conn.execute(runs.insert().values(
        id=run_id, project=project, name=name, status="running", recipe_id=None,
        created_by=store.actor, started_at=now, ended_at=None, heartbeat_at=now,
        host=socket.gethostname(), pid=pid, pid_started=process_start_time(pid), last_step=None,
        summary={}, tags=tags, error=None, context=context))
    audit.append(conn, store.actor, "run.create", f"run:{run_id}", details={"project": project, "name": name})


def require_running(conn: Connection, run_id: str, *, for_update: bool = False) -> sa.Row:
    """The row of a running run; ``for_update`` locks it until the transaction ends (PostgreSQL;
    a SQLite write transaction holds the whole database already), for read-modify-write."""
    q = sa.select(runs).where(runs.c.id == run_id)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    if row is None:
        raise NotFound("run", run_id)
    if row.status != "running":
        raise SealedError(run_id, row.status)
    return row


def update(store: Store, run_id: str, **values: object) -> None:
    """Change fields of a running run (never of a sealed one)."""
    def write(conn: Connection) -> None:
        require_running(conn, run_id)
        conn.execute(runs.update().where(runs.c.id == run_id).values(**values))

    store.db.run_write(write)


def end(store: Store, run_id: str, status: str, *, error: str | None = None, actor: str | None = None,
        context: dict | None = None) -> None:
    """Seal a running run as finished, failed or crashed; ``context`` keys are merged into the
    run's context in the same transaction (e.g. ``lost_points``)."""
    if status not in ENDED:
        raise InvalidInput(f"A run cannot end as {status!r}; use one of {', '.join(ENDED)}.")
    series = sealed.prepare_run(store, run_id)     # hashed before the write lock is taken
    with store.db.read() as conn:                   # and rolled up: the lock then holds for a check
        rolled = rollups.prepare(conn, run_id)

    def write(conn: Connection) -> None:
        row = require_running(conn, run_id, for_update=True)
        last = conn.execute(sa.select(sa.func.max(metrics.c.step)).where(metrics.c.run_id == run_id)).scalar()
        extra = {"context": {**(row.context or {}), **context}} if context else {}
        conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running").values(
            status=status, ended_at=utcnow(), error=error, last_step=last, **extra))
        rollups.write(conn, run_id, rolled)   # the charts' and statistics' summaries, final as the run is
        audit.append(conn, actor or store.actor, f"run.{'seal' if status == 'finished' else status}",
                     f"run:{run_id}", before=row.recipe_id, after=row.recipe_id,
                     details={"status": status, **{k: v for k, v in (context or {}).items() if k == "lost_points"},
                              "state": sealed.run_state(conn, run_id, series)})

    store.db.run_write(write)


def heartbeat(store: Store, run_id: str, last_step: int | None) -> None:
    def write(conn: Connection) -> None:
        values: dict = {"heartbeat_at": utcnow()}
        if last_step is not None:
            values["last_step"] = last_step
        conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running").values(**values))

    store.db.run_write(write)


def get(store: Store, ref: str) -> RunRecord:
    """A run by ``run:ID``, ``ID`` or a unique prefix of at least 6 characters (any case: run ids
    are upper-case ULIDs). A deleted run is found too: its tombstone says so."""
    ident = (ref[4:] if ref.startswith("run:") else ref).strip()
    if len(ident) < MIN_PREFIX:
        raise InvalidInput(f"Run reference {ref!r} is too short; give at least {MIN_PREFIX} characters of the id.")
    with store.db.read() as conn:
        rows = _by_prefix(conn, ident)
        if not rows and ident.upper() != ident:
            ident = ident.upper()
            rows = _by_prefix(conn, ident)
    if not rows:
        raise NotFound("run", ref, hint="List runs with `runlock runs list`.")
    exact = [r for r in rows if r.id == ident]
    if len(rows) > 1 and not exact:
        raise InvalidInput(f"Run reference {ref!r} matches several runs ({', '.join(r.id for r in rows[:2])} ...); "
                           "give more characters.")
    return from_row(exact[0] if exact else rows[0])


def _by_prefix(conn: Connection, ident: str) -> list[sa.Row]:
    # startswith(autoescape=True) escapes % and _ so they match themselves, not any character.
    exact = conn.execute(sa.select(runs).where(runs.c.id == ident)).all()
    return exact or conn.execute(sa.select(runs).where(runs.c.id.startswith(ident, autoescape=True)).limit(2)).all()


def short_ids(store: Store, ids: list[str], minimum: int = SHORT_ID) -> dict[str, str]:
    """The shortest prefix of each id (at least ``minimum`` characters) that names no other run
    in the store (deleted ones included), as git shortens commit ids. Its length is set by the
    id's neighbours in sorted order: one range read when the ids shown lie close together (a
    page of ``runs list``: ULIDs sort by time), else two index seeks per id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with store.db.read() as conn:
        lo = conn.execute(sa.select(sa.func.max(runs.c.id)).where(runs.c.id < wanted[0])).scalar()
        hi = conn.execute(sa.select(sa.func.min(runs.c.id)).where(runs.c.id > wanted[-1])).scalar()
        q = sa.select(runs.c.id).where(runs.c.id >= (lo or wanted[0]), runs.c.id <= (hi or wanted[-1]))
        span = conn.execute(q.order_by(runs.c.id).limit(8 * len(wanted) + 2)).scalars().all()
        if len(span) <= 8 * len(wanted) + 1:        # the whole range: neighbours are adjacent in it
            at = {ident: n for n, ident in enumerate(span)}
            neighbours = {i: (span[at[i] - 1] if at[i] else None, span[at[i] + 1] if at[i] + 1 < len(span) else None)
                          for i in wanted if i in at}
        else:
            neighbours = {}
        for ident in wanted:
            if ident not in neighbours:
                neighbours[ident] = (
                    conn.execute(sa.select(sa.func.max(runs.c.id)).where(runs.c.id < ident)).scalar(),
                    conn.execute(sa.select(sa.func.min(runs.c.id)).where(runs.c.id > ident)).scalar())
    out = {}
    for ident in ids:
        shared = max((_shared(ident, other) for other in neighbours[ident] if other), default=0)
        out[ident] = ident[:max(minimum, shared + 1)]
    return out


def _shared(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def select_runs(project: str | None = None, status: str | None = None, *, deleted: bool = False) -> sa.Select:
    """The runs of a project and/or with a status (unordered); deleted runs (tombstones) only
    with ``deleted=True``, and then only they."""
    q = sa.select(runs).where(runs.c.deleted_at.is_not(None) if deleted else runs.c.deleted_at.is_(None))
    if project:
        q = q.where(runs.c.project == project)
    if status:
        if status not in STATUSES:
            raise InvalidInput(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
        q = q.where(runs.c.status == status)
    return q


def list_runs(store: Store, *, project: str | None = None, status: str | None = None,
              limit: int | None = None, deleted: bool = False) -> list[RunRecord]:
    q = select_runs(project, status, deleted=deleted).order_by(runs.c.started_at.desc(), runs.c.id.desc())
    if limit:
        q = q.limit(limit)
    with store.db.read() as conn:
        return [from_row(r) for r in conn.execute(q)]


def _is_dead(row: sa.Row, host: str, now: dt.datetime) -> bool:
    if row.host == host and row.pid is not None:
        started = process_start_time(row.pid)
        if started is None:
            return True
        return row.pid_started is not None and abs(started - row.pid_started) > 1.0
    beat = dt.datetime.strptime(row.heartbeat_at or row.started_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    beat = beat.replace(tzinfo=dt.timezone.utc)
    return (now - beat).total_seconds() > STALE_AFTER_SECONDS


def reap_crashed(store: Store) -> list[str]:
    """Mark every running run whose process is gone as ``crashed``; return their ids."""
    host = socket.gethostname()
    now = dt.datetime.now(dt.timezone.utc)
    with store.db.read() as conn:
        running = conn.execute(sa.select(runs).where(runs.c.status == "running")).all()
    dead = [r.id for r in running if _is_dead(r, host, now)]
    for run_id in dead:
        try:
            end(store, run_id, "crashed", error="The process died without ending the run "
                                                "(detected when the store was next opened).",
                actor="runlock")
        except SealedError:
            pass  # another process reaped it first
    return dead
