"""outbox, handled events, notifications, view-flush ledger

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-27 06:30:00.000000

A branch beside 0002: migrations run to all heads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "outbox_event",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("aggregate_type", sa.String(length=32), nullable=False),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
    )
    op.create_index("idx_outbox_pending", "outbox_event", ["id"], postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index(
        "idx_outbox_pending_aggregate",
        "outbox_event",
        ["aggregate_id", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index("idx_outbox_status_created", "outbox_event", ["status", "created_at"])

    op.create_table(
        "handled_event",
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("handler", sa.String(length=100), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "handler", name=op.f("pk_handled_event")),
    )

    op.create_table(
        "notification",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["user_account.id"], name=op.f("fk_notification_actor_id_user_account"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_notification_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_notification_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("user_id", "kind", "recipe_id", name="uq_notification_user_kind_recipe"),
    )
    op.create_index(
        "idx_notification_user_created", "notification", ["user_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "idx_notification_unread",
        "notification",
        ["user_id"],
        postgresql_where=sa.text("read_at IS NULL"),
        sqlite_where=sa.text("read_at IS NULL"),
    )
    # Deleting a recipe cascades to its notifications: without this index that is a scan per delete.
    op.create_index("idx_notification_recipe", "notification", ["recipe_id"])

    op.create_table(
        "stats_flush",
        sa.Column("flush_id", sa.String(length=64), nullable=False),
        sa.Column("recipes", sa.Integer(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.Column("flushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flush_id", name=op.f("pk_stats_flush")),
    )


def downgrade() -> None:
    op.drop_table("stats_flush")
    op.drop_index("idx_notification_recipe", table_name="notification")
    op.drop_index("idx_notification_unread", table_name="notification")
    op.drop_index("idx_notification_user_created", table_name="notification")
    op.drop_table("notification")
    op.drop_table("handled_event")
    op.drop_index("idx_outbox_status_created", table_name="outbox_event")
    op.drop_index("idx_outbox_pending_aggregate", table_name="outbox_event")
    op.drop_index("idx_outbox_pending", table_name="outbox_event")
    op.drop_table("outbox_event")
