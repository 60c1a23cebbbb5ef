"""splits: split manifests and their latest leakage report

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = ("splits",)
depends_on = None

ID = sa.String(100)


def upgrade() -> None:
    op.create_table(
        "splits",
        sa.Column("id", ID, primary_key=True),
        sa.Column("snapshot_id", ID, nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_splits_snapshot", "splits", ["snapshot_id"])


def downgrade() -> None:
    op.drop_table("splits")
