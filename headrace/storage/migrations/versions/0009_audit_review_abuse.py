"""audit log, review queue, key suspensions (issue 8)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 16:10:00.000000
"""

from __future__ import annotations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
