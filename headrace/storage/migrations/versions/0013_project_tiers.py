"""projects: service tier (which deployments a project may use; a metrics label)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 16:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.add_column(
            sa.Column("tier", sa.String(length=32), nullable=False, server_default="standard")
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("tier")
