"""Metric batches as they arrive over HTTP: decoded, bounded, checked, and stored idempotently.

A batch is ``{"rank": R, "points": [[key, step, seq, value, time], ...]}`` as msgpack
(``application/msgpack``) or JSON, optionally gzip-compressed (``Content-Encoding: gzip``).
``value`` is a float, or one of the strings ``"nan"``, ``"inf"``, ``"-inf"``. The client numbers
its log calls (``seq``, per run and rank); the metrics table's key (run, rank, seq, key) makes a
batch sent twice (a retry, a spool replayed after a restart) land once.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import msgpack
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import metrics, runs, utcnow
from runlock.tracking import fields, records
from runlock.tracking.values import MAX_KEY_LENGTH, MAX_STEP

MAX_DECODED_BYTES = 64 * 1024 * 1024      # a gzip bomb stops here
MAX_POINTS = 200_000                      # per batch
_RAW = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def decode(body: bytes, content_type: str, encoding: str) -> dict:
    if encoding.strip().lower() == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = d.decompress(body, MAX_DECODED_BYTES)
        except zlib.error:
            raise InvalidInput("The batch is not valid gzip.") from None
        if d.unconsumed_tail:
            raise InvalidInput(f"The batch decompresses to more than {MAX_DECODED_BYTES} bytes.")
    elif encoding.strip() not in ("", "identity"):
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    try:
        if content_type.split(";")[0].strip() == "application/msgpack":
            doc = msgpack.unpackb(body, raw=False, strict_map_key=True)
        else:
            doc = json.loads(body)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, UnicodeDecodeError):
        raise InvalidInput("The batch is neither valid msgpack nor valid JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidInput("A batch is an object: {\"rank\": 0, \"points\": [[key, step, seq, value, time], ...]}.")
    return doc


def rows(run_id: str, doc: dict) -> list[tuple]:
    """The batch's points as metrics rows, every field checked."""
    rank, pts = doc.get("rank", 0), doc.get("points")
    if type(rank) is not int or not 0 <= rank < 2**31:
        raise InvalidInput("rank must be a non-negative integer.")
    if not isinstance(pts, list) or len(pts) > MAX_POINTS:
        raise InvalidInput(f"points must be a list of at most {MAX_POINTS} points.")
    out = []
    for p in pts:
        if not (isinstance(p, list) and len(p) == 5):
            raise InvalidInput("Each point is [key, step, seq, value, time].")
        key, step, seq, value, when = p
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise InvalidInput(f"A metric key is 1 to {MAX_KEY_LENGTH} characters.")
        if type(step) is not int or not 0 <= step <= MAX_STEP or type(seq) is not int or not 0 <= seq < 2**62:
            raise InvalidInput("step and seq must be non-negative integers.")
        if not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
            raise InvalidInput("time must be a number of unix seconds.")
        out.append((run_id, key, step, rank, seq, *_value(value), float(when)))
    return out


def _value(value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, str) and value in _RAW:
        return None, value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if math.isfinite(v):
            return v, None
        return None, "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    raise InvalidInput("A metric value is a number, or 'nan', 'inf', '-inf'.")


def store_points(store: Store, run_id: str, batch: list[tuple]) -> int:
    """Insert the rows (those already there are kept, not doubled); refresh the heartbeat."""
    cols = ("run_id", "key", "step", "rank", "seq", "value", "raw", "time")

    def write(conn: Connection) -> int:
        records.require_running(conn, run_id)
        values: dict = {"heartbeat_at": utcnow()}
        if batch:
            if conn.dialect.name == "sqlite":   # the driver's executemany of tuples: 2.5x SQLAlchemy's
                conn.exec_driver_sql(_sqlite_insert(conn), batch)
            else:
                conn.execute(postgresql.insert(metrics).on_conflict_do_nothing(), [dict(zip(cols, r)) for r in batch])
            top = max(r[2] for r in batch)
            greatest = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
            values["last_step"] = greatest(sa.func.coalesce(runs.c.last_step, top), top)
            latest = {r[1]: (r[2], r[5], r[6]) for r in sorted(batch, key=lambda r: (r[2], r[4])) if r[3] == 0}
            if latest:
                fields.record_latest(conn, run_id, latest)
        conn.execute(runs.update().where(runs.c.id == run_id).values(**values))
        return len(batch)

    return store.db.run_write(write)


def _sqlite_insert(conn: Connection) -> str:
    """INSERT OR IGNORE into ``metrics`` as SQLAlchemy compiles it for SQLite, columns in table order."""
    cols = [c.name for c in metrics.c]
    stmt = metrics.insert().prefix_with("OR IGNORE").values({c: sa.bindparam(c) for c in cols})
    compiled = stmt.compile(dialect=conn.dialect)
    assert list(compiled.positiontup) == cols
    return str(compiled)
