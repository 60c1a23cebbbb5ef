"""annotations: tombstones on runs (deleted_at/by/reason) and run notes

Revision ID: 0010
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = ("annotations",)
depends_on = None

ID = sa.String(100)
NAME = sa.String(200)
TIME = sa.String(32)


def upgrade() -> None:
    op.add_column("runs", sa.Column("deleted_at", TIME, nullable=True))
    op.add_column("runs", sa.Column("deleted_by", NAME, nullable=True))
    op.add_column("runs", sa.Column("deleted_reason", sa.Text, nullable=True))
    op.create_table(
        "run_notes",
        sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_run_notes"),
    )


def downgrade() -> None:
    op.drop_table("run_notes")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_reason")
        batch.drop_column("deleted_by")
        batch.drop_column("deleted_at")
