"""tracking: the query index of runs (config, summary, tags, latest metrics)

Revision ID: 0005
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = ("tracking",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_fields",
        sa.Column("run_id", sa.String(100), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("slug", sa.String(250), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("num", sa.Float, nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "section", "key", name="pk_run_fields"),
    )
    op.create_index("ix_run_fields_slug_num", "run_fields", ["section", "slug", "num"])
    op.create_index("ix_run_fields_run_slug", "run_fields", ["run_id", "section", "slug"])


def downgrade() -> None:
    op.drop_table("run_fields")
