"""verify: verification records, variance spreads, audit rehearsals

Revision ID: 0009
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = ("verify",)
depends_on = None

ID = sa.String(100)
NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", ID, primary_key=True),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("rerun_id", ID, nullable=True),
        sa.Column("reference", ID, nullable=True),
        sa.Column("rehearsal_id", ID, nullable=True),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
    )
    op.create_index("ix_verifications_run", "verifications", ["run_id", "created_at"])
    op.create_index("ix_verifications_rehearsal", "verifications", ["rehearsal_id"])
    op.create_table(
        "variance_spreads",
        sa.Column("id", ID, primary_key=True),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("seeds", sa.JSON, nullable=False),
        sa.Column("runs", sa.JSON, nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
    )
    op.create_index("ix_variance_run", "variance_spreads", ["run_id", "created_at"])
    op.create_table(
        "rehearsals",
        sa.Column("id", ID, primary_key=True),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rehearsals")
    op.drop_table("variance_spreads")
    op.drop_table("verifications")
