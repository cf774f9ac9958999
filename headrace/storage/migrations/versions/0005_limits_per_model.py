"""limits per model: `model` joins the key of `limits` ("" for all models)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows become the all-models limits they were.
    with op.batch_alter_table("limits", recreate="always") as batch_op:
        batch_op.add_column(
            sa.Column("model", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.drop_constraint("pk_limits", type_="primary")
        batch_op.create_primary_key("pk_limits", ["scope", "scope_id", "model"])


def downgrade() -> None:
    op.execute("DELETE FROM limits WHERE model <> ''")
    with op.batch_alter_table("limits", recreate="always") as batch_op:
        batch_op.drop_constraint("pk_limits", type_="primary")
        batch_op.drop_column("model")
        batch_op.create_primary_key("pk_limits", ["scope", "scope_id"])
