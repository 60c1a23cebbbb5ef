"""audit log: hash-chained entries

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = ("audit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("before", sa.String(100), nullable=True),
        sa.Column("after", sa.String(100), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(100), nullable=False),
        sa.Column("entry_hash", sa.String(100), nullable=False),
    )
    op.create_index("ix_audit_target", "audit_log", ["target"])
    op.create_index("ix_audit_actor", "audit_log", ["actor"])


def downgrade() -> None:
    op.drop_table("audit_log")
