"""safety policy per project (issue 8)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_policies",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_safety_policies_project_id_projects",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_safety_policies"),
    )


def downgrade() -> None:
    op.drop_table("safety_policies")
