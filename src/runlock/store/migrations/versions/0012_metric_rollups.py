"""metric rollups: per-bucket summaries of a sealed run's series (charts and statistics)

Revision ID: 0012
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("run_id", sa.String(100), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.BigInteger, nullable=False),
        sa.Column("lo_step", sa.BigInteger, nullable=False),
        sa.Column("hi_step", sa.BigInteger, nullable=False),
        sa.Column("vmin", sa.Float, nullable=True),
        sa.Column("vmax", sa.Float, nullable=True),
        sa.Column("n0", sa.BigInteger, nullable=False),
        sa.Column("first0", sa.BigInteger, nullable=True),
        sa.Column("last0", sa.BigInteger, nullable=True),
        sa.Column("min0", sa.Float, nullable=True),
        sa.Column("max0", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", "width", "bucket", name="pk_metric_rollups"),
    )


def downgrade() -> None:
    op.drop_table("metric_rollups")
