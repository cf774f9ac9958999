"""PII policy per project (issue 8)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_policies",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("pii_mode", sa.String(length=8), nullable=False),
        sa.Column("pii_kinds", sa.JSON(), nullable=True),
        sa.Column("injection_threshold", sa.Float(), nullable=False),
        sa.Column("injection_action", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_privacy_policies_project_id_projects",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_privacy_policies"),
    )


def downgrade() -> None:
    op.drop_table("privacy_policies")
