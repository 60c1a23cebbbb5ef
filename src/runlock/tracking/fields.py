"""The query index: every run's config, summary, tags and latest metric values as typed rows.

The lock (an object) and the summary (a JSON column) are the truth; ``run_fields`` repeats their
leaves so that ``runs list --where 'config.lr > 1e-4'`` is one indexed SQL query over thousands
of runs instead of a read of every lock. Rows are rewritten in the same transaction that changes
the truth (start, ``record_config``, ``set_summary``), and the metric writer keeps the latest
value of each metric (the last point rank 0 logged) up to date with every batch.

Each row: ``section`` (config | summary | tags | metrics), ``key`` (the dotted path of a nested
value, ``lora.r``; a summary or metric key as logged, ``eval/f1``), ``slug`` (the key with every
character other than letters, digits, ``_`` and ``.`` replaced by ``_``: ``eval_f1``, the form a
query may use), ``kind`` (num | bool | str | null | json), ``num`` (numbers and booleans),
``text`` (strings as they are; canonical JSON of anything else; ``nan``/``inf`` of a metric).
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import canonical
from runlock.store.schema import ID, METADATA

SECTIONS = ("config", "summary", "tags", "metrics")
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_.]")

run_fields = sa.Table(
    "run_fields", METADATA,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("section", sa.String(16), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("slug", sa.String(250), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("num", sa.Float, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=True),   # metrics: the step of the latest value
    sa.PrimaryKeyConstraint("run_id", "section", "key", name="pk_run_fields"),
    sa.Index("ix_run_fields_slug_num", "section", "slug", "num"),
    sa.Index("ix_run_fields_run_slug", "run_id", "section", "slug"),
)


def slug(key: str) -> str:
    """``eval/f1`` -> ``eval_f1``: the form of a key that a ``--where`` expression can spell."""
    return _NOT_SLUG.sub("_", key)


def flatten(value: object, prefix: str = "", *, lists: bool = False) -> dict[str, object]:
    """Nested dicts to dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``. Lists stay whole leaves,
    or with ``lists=True`` are opened too (``{"l": [1, 2]}`` -> ``{"l[0]": 1, "l[1]": 2}``, as a
    diff wants them); empty dicts and lists stay leaves."""
    out: dict[str, object] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), lists=lists))
    elif lists and isinstance(value, list) and value:
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]", lists=lists))
    elif prefix:
        out[prefix] = value
    return out


def typed(value: object) -> tuple[str, float | None, str | None]:
    """(kind, num, text) of one JSON leaf."""
    if value is None:
        return "null", None, None
    if isinstance(value, bool):
        return "bool", float(value), "true" if value else "false"
    if isinstance(value, (int, float)):
        return "num", float(value), json.dumps(value)
    if isinstance(value, str):
        return "str", None, value
    return "json", None, canonical.dumps(value).decode()


def untyped(kind: str, num: float | None, text: str | None) -> object:
    """The value back from its row (ints stay ints; a metric's nan/inf comes back as a float)."""
    if kind == "str":
        return text
    if kind == "null":
        return None
    if kind == "bool":
        return bool(num)
    if kind == "json":
        return json.loads(text)
    if num is None:
        return float(text) if text else None
    return json.loads(text) if text else num


def replace_section(conn: Connection, run_id: str, section: str, values: dict) -> None:
    """Rewrite one section of a run's index from a (nested) document."""
    conn.execute(run_fields.delete().where(run_fields.c.run_id == run_id, run_fields.c.section == section))
    rows = [{"run_id": run_id, "section": section, "key": k, "slug": slug(k), "kind": kind, "num": num,
             "text": text, "step": None}
            for k, v in flatten(values).items() if len(k) <= 250
            for kind, num, text in [typed(v)]]
    if rows:
        conn.execute(run_fields.insert(), rows)


def record_latest(conn: Connection, run_id: str, latest: dict[str, tuple]) -> None:
    """Upsert the latest value of each metric: ``{key: (step, value, raw)}`` of the last point
    logged (batches arrive in logging order, so the last write wins)."""
    if not latest:
        return
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # the PostgreSQL dialect costs ~50 ms to import: only PostgreSQL stores load it
        from sqlalchemy.dialects.postgresql import insert
    stmt = insert(run_fields).values([
        {"run_id": run_id, "section": "metrics", "key": k, "slug": slug(k), "kind": "num",
         "num": v, "text": raw, "step": step}
        for k, (step, v, raw) in latest.items()])
    ex = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "section", "key"],
                                            set_={"num": ex.num, "text": ex.text, "step": ex.step}))


def for_runs(conn: Connection, run_ids: list[str],
             only: sa.ColumnElement | None = None) -> dict[str, dict[str, object]]:
    """``{run_id: {"config.lr": 0.1, "summary.eval/f1": 0.9, "metrics.loss": 0.2, ...}}``
    (only the rows matching ``only``, when given)."""
    out: dict[str, dict[str, object]] = {r: {} for r in run_ids}
    for i in range(0, len(run_ids), 500):
        chunk = run_ids[i:i + 500]
        q = sa.select(run_fields).where(run_fields.c.run_id.in_(chunk), *(() if only is None else (only,))).order_by(
            run_fields.c.run_id, run_fields.c.section, run_fields.c.key)
        for r in conn.execute(q):
            out[r.run_id][f"{r.section}.{r.key}"] = untyped(r.kind, r.num, r.text)
    return out
