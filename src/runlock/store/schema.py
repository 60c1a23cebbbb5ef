"""Table definitions shared by every backend.

All tables hang off one ``METADATA``. The foundation's tables are defined here; a domain module
that needs its own table defines it next to its code on this same ``METADATA`` and ships an
Alembic migration (``store/migrations/versions``) that creates it. ``tests/store`` checks that
the migrated database matches ``METADATA`` exactly, on SQLite and on PostgreSQL.

Times are ISO-8601 UTC strings (``2026-11-23T14:45:30.123456Z``): portable, sortable, readable.
"""

from __future__ import annotations

import datetime as _dt

import sqlalchemy as sa

METADATA = sa.MetaData()

ID = sa.String(100)       # run ids, content ids ("sha256:…", 71 chars), refs
NAME = sa.String(200)
TIME = sa.String(32)

store_info = sa.Table(
    "store_info", METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs", METADATA,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project", NAME, nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running|finished|failed|crashed
    sa.Column("recipe_id", ID, nullable=True),          # sha256 of the lock; the lock object's id
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("ended_at", TIME, nullable=True),
    sa.Column("heartbeat_at", TIME, nullable=True),
    sa.Column("host", NAME, nullable=False),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("pid_started", sa.Float, nullable=True),  # process start time, guards pid reuse
    sa.Column("last_step", sa.BigInteger, nullable=True),
    sa.Column("summary", sa.JSON, nullable=False, default=dict),
    sa.Column("tags", sa.JSON, nullable=False, default=dict),
    sa.Column("error", sa.Text, nullable=True),          # traceback of a failed run
    sa.Column("context", sa.JSON, nullable=False, default=dict),  # host, user, cwd, argv: not recipe
    sa.Column("deleted_at", TIME, nullable=True),        # a tombstone (runs delete): hidden, kept for audit
    sa.Column("deleted_by", NAME, nullable=True),
    sa.Column("deleted_reason", sa.Text, nullable=True),
    sa.Index("ix_runs_project_started", "project", "started_at"),
    sa.Index("ix_runs_status", "status"),
)

metrics = sa.Table(
    "metrics", METADATA,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False, default=0),
    sa.Column("seq", sa.BigInteger, nullable=False),     # order of logging within (run, rank)
    sa.Column("value", sa.Float, nullable=True),         # NULL encodes NaN on PostgreSQL-less drivers
    sa.Column("raw", sa.String(16), nullable=True),      # "nan", "inf", "-inf" when not finite
    sa.Column("time", sa.Float, nullable=False),         # unix seconds when logged
    sa.PrimaryKeyConstraint("run_id", "rank", "seq", "key", name="pk_metrics"),
    sa.Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

artifacts = sa.Table(
    "artifacts", METADATA,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("digest", ID, nullable=False),      # content id: a file's sha256 or a folder's tree id
    sa.Column("manifest", ID, nullable=True),     # object holding the folder's file list
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", TIME, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "name", name="pk_artifacts"),
    sa.Index("ix_artifacts_digest", "digest"),
)

refs = sa.Table(
    # Human names for content ids: ds:NAME@vN, split:NAME@vN, model:NAME@vN.
    "refs", METADATA,
    sa.Column("namespace", sa.String(16), nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("target", ID, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.PrimaryKeyConstraint("namespace", "name", "version", name="pk_refs"),
    sa.UniqueConstraint("namespace", "name", "target", name="uq_refs_target"),
)

edges = sa.Table(
    # Lineage: (kind, src, dst) with kind in used | generated_by | derived_from | reproduces.
    "edges", METADATA,
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("src", ID, nullable=False),
    sa.Column("dst", ID, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.PrimaryKeyConstraint("kind", "src", "dst", name="pk_edges"),
    sa.Index("ix_edges_dst", "dst"),
)


def utcnow() -> str:
    """The current time in the store's format."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
