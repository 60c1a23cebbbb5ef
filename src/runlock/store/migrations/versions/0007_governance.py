"""governance: identities, role grants, API tokens (hashes only)

Revision ID: 0007
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = ("governance",)
depends_on = None

NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("disabled_at", TIME, nullable=True),
    )
    op.create_table(
        "role_grants",
        sa.Column("identity", NAME, nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_at", TIME, nullable=False),
        sa.Column("granted_by", NAME, nullable=False),
        sa.PrimaryKeyConstraint("identity", "project", name="pk_role_grants"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("identity", NAME, nullable=False),
        sa.Column("secret_hash", sa.String(100), nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("revoked_by", NAME, nullable=True),
    )
    op.create_index("ix_tokens_identity", "tokens", ["identity"])


def downgrade() -> None:
    for name in ("tokens", "role_grants", "identities"):
        op.drop_table(name)
