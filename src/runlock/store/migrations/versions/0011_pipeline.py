"""pipeline: stage executions and cache hits (the run-cache), per-stage locks

Revision ID: 0011
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0001"
branch_labels = ("pipeline",)
depends_on = None

ID = sa.String(100)
NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "pipeline_stages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("pipeline", sa.String(1000), nullable=False),
        sa.Column("stage", NAME, nullable=False),
        sa.Column("stage_key", ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("source_run", ID, nullable=True),
        sa.Column("repro_id", ID, nullable=False),
        sa.Column("holder", NAME, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outs", sa.JSON, nullable=False),
        sa.Column("restored", sa.JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
    )
    op.create_index("ix_pipeline_stages_key", "pipeline_stages", ["stage_key", "status"])
    op.create_index("ix_pipeline_stages_stage", "pipeline_stages", ["pipeline", "stage"])
    op.create_table(
        "pipeline_locks",
        sa.Column("stage_key", ID, primary_key=True),
        sa.Column("holder", NAME, nullable=False),
        sa.Column("acquired_at", TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pipeline_locks")
    op.drop_index("ix_pipeline_stages_stage", table_name="pipeline_stages")
    op.drop_index("ix_pipeline_stages_key", table_name="pipeline_stages")
    op.drop_table("pipeline_stages")
