"""audit checkpoints: Merkle tree heads (size + root), signed with the store's key

Revision ID: 0008
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(100), nullable=False),
        sa.Column("frontier", sa.JSON, nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=True),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("signed_at", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
