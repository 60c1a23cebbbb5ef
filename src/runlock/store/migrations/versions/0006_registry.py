"""registry: model aliases, the record of every alias move, refs by target

Revision ID: 0006
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = ("registry",)
depends_on = None

NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("name", NAME, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("set_at", TIME, nullable=False),
        sa.Column("set_by", NAME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "model_alias_moves",
        sa.Column("audit_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_model_alias_moves_name", "model_alias_moves", ["name", "alias", "at"])
    op.create_index("ix_refs_target", "refs", ["namespace", "target"])


def downgrade() -> None:
    op.drop_index("ix_refs_target", "refs")
    op.drop_table("model_alias_moves")
    op.drop_table("model_aliases")
