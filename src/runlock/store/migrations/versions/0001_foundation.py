"""foundation: store info, runs, metrics, artifacts, refs, lineage edges

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = ("foundation",)
depends_on = None

ID = sa.String(100)
NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "store_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("recipe_id", ID, nullable=True),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("heartbeat_at", TIME, nullable=True),
        sa.Column("host", NAME, nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("pid_started", sa.Float, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("context", sa.JSON, nullable=False),
    )
    op.create_index("ix_runs_project_started", "runs", ["project", "started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "metrics",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("raw", sa.String(16), nullable=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "rank", "seq", "key", name="pk_metrics"),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])
    op.create_table(
        "artifacts",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("digest", ID, nullable=False),
        sa.Column("manifest", ID, nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_artifacts"),
    )
    op.create_index("ix_artifacts_digest", "artifacts", ["digest"])
    op.create_table(
        "refs",
        sa.Column("namespace", sa.String(16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("target", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", "version", name="pk_refs"),
        sa.UniqueConstraint("namespace", "name", "target", name="uq_refs_target"),
    )
    op.create_table(
        "edges",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("src", ID, nullable=False),
        sa.Column("dst", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("kind", "src", "dst", name="pk_edges"),
    )
    op.create_index("ix_edges_dst", "edges", ["dst"])


def downgrade() -> None:
    for name in ("edges", "refs", "artifacts", "metrics", "runs", "store_info"):
        op.drop_table(name)
