"""data: dataset snapshots

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("data",)
depends_on = None

ID = sa.String(100)


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent", ID, nullable=True),
        sa.Column("recipe_id", ID, nullable=True),
        sa.Column("recipe", sa.JSON, nullable=True),
        sa.Column("record_count", sa.BigInteger, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_snapshots_recipe", "snapshots", ["recipe_id"])


def downgrade() -> None:
    op.drop_table("snapshots")
