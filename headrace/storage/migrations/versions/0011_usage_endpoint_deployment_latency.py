"""usage events: endpoint, deployment, model version, latency breakdown (gateway, TTFT);
replicas (which gateway process holds a replica id)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 16:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_start", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("usage_events") as batch_op:
        batch_op.add_column(
            sa.Column(
                "endpoint", sa.String(length=32), nullable=False, server_default="chat.completions"
            )
        )
        batch_op.add_column(
            sa.Column("deployment", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("model_version", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("gateway_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ttft_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_table("replicas")
    with op.batch_alter_table("usage_events") as batch_op:
        for column in ("ttft_ms", "gateway_ms", "model_version", "deployment", "endpoint"):
            batch_op.drop_column(column)
