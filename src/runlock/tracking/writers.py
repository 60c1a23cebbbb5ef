"""The processes that write one run's metrics, as its record knows them.

A process that joins a run it does not own (the script under ``runlock run``, ranks 1..N of a
distributed job) registers its metric writer in the run's ``context["writers"]`` when it joins,
and reports when it ends how many of its points it could not store. The owner, before it seals,
waits for every registered writer to report (``wait``): a writer whose process is gone without
reporting, or that is still open when the wait ends, may have lost points that nobody counted.
``Run.finish`` then seals the run ``failed`` with ``context["lost_points"]`` and the writers
that did not report (``context["unflushed_writers"]``), never a clean ``finished``.

Registering and reporting are best effort: a store that refuses the write (read-only, gone)
refuses the points too, and the writer says so itself.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from runlock.errors import RunlockError
from runlock.store import Store
from runlock.store.schema import runs
from runlock.tracking import records

POLL_S = 0.1


@dataclass(frozen=True)
class Outcome:
    """What the joined writers of a run reported: points lost, and writers that never reported."""

    lost: int = 0
    reasons: tuple[str, ...] = ()
    unflushed: tuple[dict, ...] = field(default_factory=tuple)


def register(store: Store, run_id: str, key: str, rank: int) -> bool:
    """Record that this process writes metrics to ``run_id`` (under ``key``); False if the store
    refused."""
    entry = {"host": socket.gethostname(), "pid": os.getpid(),
             "pid_started": records.process_start_time(os.getpid()), "rank": rank, "state": "open"}
    return _change(store, run_id, lambda ws: ws.__setitem__(key, entry))


def report(store: Store, run_id: str, key: str, lost: int, why: str | None) -> bool:
    """Record that the writer ``key`` has ended, and how many of its points were not stored."""
    def close(ws: dict) -> None:
        entry = dict(ws.get(key) or {"host": socket.gethostname(), "pid": os.getpid()})
        entry.update(state="closed", lost=lost, **({"why": why} if lost and why else {}))
        ws[key] = entry

    return _change(store, run_id, close)


def wait(store: Store, run_id: str, timeout: float, *, skip: Callable[[str], bool] = lambda key: False) -> Outcome:
    """Wait (at most ``timeout`` seconds) until every registered writer has reported or its
    process is gone; return what they lost and which never reported."""
    deadline = time.monotonic() + timeout
    host = socket.gethostname()
    while True:
        writers = records.get(store, run_id).context.get("writers") or {}
        waiting = {k: w for k, w in writers.items() if w.get("state") == "open" and not skip(k)}
        alive = {k: w for k, w in waiting.items() if not _gone(w, host)}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    closed = [w for k, w in writers.items() if w.get("state") == "closed" and not skip(k)]
    return Outcome(lost=sum(int(w.get("lost") or 0) for w in closed),
                   reasons=tuple(dict.fromkeys(w["why"] for w in closed if w.get("why"))),
                   unflushed=tuple({"rank": w.get("rank"), "pid": w.get("pid"), "host": w.get("host"),
                                    "alive": k in alive} for k, w in sorted(waiting.items())))


def _gone(writer: dict, host: str) -> bool:
    """The writer's process has ended (only knowable on this host)."""
    if writer.get("host") != host or writer.get("pid") is None:
        return False
    started = records.process_start_time(int(writer["pid"]))
    if started is None:
        return True
    return writer.get("pid_started") is not None and abs(started - writer["pid_started"]) > 1.0


def _change(store: Store, run_id: str, change: Callable[[dict], None]) -> bool:
    def write(conn: Connection) -> None:
        row = records.require_running(conn, run_id, for_update=True)
        context = dict(row.context or {})
        writers = dict(context.get("writers") or {})
        change(writers)
        context["writers"] = writers
        conn.execute(runs.update().where(runs.c.id == run_id).values(context=context))

    try:
        store.db.run_write(write)
    except RunlockError:
        return False
    return True


def loss_note(lost: int, reasons: tuple, unflushed: tuple) -> str:
    """The error a run with incomplete metrics is sealed with: what was lost, why, and who never reported."""
    parts = []
    if lost:
        why = "; ".join(dict.fromkeys(r for r in reasons if r)) or "see the warnings of the process that logged them"
        parts.append(f"{lost} metric point(s) logged were not stored ({why})")
    if unflushed:
        who = ", ".join(f"rank {w.get('rank')} pid {w.get('pid')}" + (" still running" if w.get("alive") else "")
                        for w in unflushed)
        parts.append(f"{len(unflushed)} process(es) logging to this run never reported that their metrics "
                     f"were stored ({who})")
    return "Metrics incomplete: " + "; ".join(parts) + "."
