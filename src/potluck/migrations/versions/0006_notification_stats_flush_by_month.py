"""notification and stats_flush range-partitioned by month (PostgreSQL only)

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-05 19:00:00.000000

PostgreSQL requires the partition key in every unique key, and both tables rely on one for idempotency, so each
partition key is a time that a re-delivery carries unchanged:

- notification by created_at. A follower's "new recipe" notification is stamped with the recipe's created_at
  (NotificationService.fan_out_plan), which never changes, so (user_id, kind, recipe_id, created_at) admits
  exactly what (user_id, kind, recipe_id) did: one notification per follower per recipe. "follow"
  notifications have no recipe (NULLs never conflict) and were never deduplicated by this key, but by their
  handler's record in the same transaction. The primary key becomes (id, created_at).
- stats_flush by flushed_at, which is now the time inside the flush's UUIDv7 id (stats.views.flush_time): a
  retried flush has the same id, hence the same time, and (flush_id, flushed_at) still refuses it. Existing rows
  are rewritten to that time so a flush applied before the upgrade and retried after it is still refused.

Months past each table's retention are dropped whole by the `events.partitions` job (db/time_partitions.py).
Rows are copied into the new tables here (one INSERT ... SELECT each). SQLite keeps its plain tables.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime
from itertools import pairwise

from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Months created before this one (older rows go to the default partition) and after it.
MONTHS_BACK = 3
MONTHS_AHEAD = 1

NOTIFICATION_COLUMNS = "id, user_id, kind, actor_id, recipe_id, read_at, created_at"
NOTIFICATION_INDEXES = ("idx_notification_user_created", "idx_notification_unread", "idx_notification_recipe")
# The time inside a UUIDv7 (its first 48 bits, milliseconds since the epoch); other ids keep their time.
FLUSH_TIME_SQL = (
    "CASE WHEN flush_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7' "
    "THEN to_timestamp(('x' || lpad(substr(replace(flush_id, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint "
    "/ 1000.0) ELSE flushed_at END"
)


def _months() -> list[date]:
    first = datetime.now(UTC).date().replace(day=1)
    index = first.year * 12 + first.month - 1
    return [date((index + n) // 12, (index + n) % 12 + 1, 1) for n in range(-MONTHS_BACK, MONTHS_AHEAD + 2)]


def _month_partitions(table: str) -> None:
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    months = _months()
    for start, end in pairwise(months):
        op.execute(
            f"CREATE TABLE {table}_p{start:%Y%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') TO ('{end.isoformat()} 00:00:00+00')"
        )


def _notification_indexes() -> None:
    op.execute("CREATE INDEX idx_notification_user_created ON notification (user_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX idx_notification_unread ON notification (user_id) WHERE read_at IS NULL")
    # Deleting a recipe cascades to its notifications: without this index that is a scan per delete.
    op.execute("CREATE INDEX idx_notification_recipe ON notification (recipe_id)")


def _set_aside_notification(old: str) -> None:
    op.execute(f"ALTER TABLE notification RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_notification TO pk_notification_old")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT uq_notification_user_kind_recipe TO uq_notification_old")
    for index in NOTIFICATION_INDEXES:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")


def _notification_table(partitioned: bool) -> None:
    time_in_keys = ", created_at" if partitioned else ""
    op.execute(
        f"""
        CREATE TABLE notification (
            user_id uuid NOT NULL,
            kind varchar(20) NOT NULL,
            actor_id uuid NOT NULL,
            recipe_id uuid,
            read_at timestamptz,
            id uuid NOT NULL,
            created_at timestamptz NOT NULL,
            CONSTRAINT pk_notification PRIMARY KEY (id{time_in_keys}),
            CONSTRAINT uq_notification_user_kind_recipe UNIQUE (user_id, kind, recipe_id{time_in_keys}),
            CONSTRAINT fk_notification_actor_id_user_account FOREIGN KEY (actor_id)
                REFERENCES user_account (id) ON DELETE CASCADE,
            CONSTRAINT fk_notification_recipe_id_recipe FOREIGN KEY (recipe_id)
                REFERENCES recipe (id) ON DELETE CASCADE,
            CONSTRAINT fk_notification_user_id_user_account FOREIGN KEY (user_id)
                REFERENCES user_account (id) ON DELETE CASCADE
        ) {"PARTITION BY RANGE (created_at)" if partitioned else ""}
        """
    )


def _stats_flush_table(old: str, partitioned: bool) -> None:
    op.execute(f"ALTER TABLE stats_flush RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_stats_flush TO pk_stats_flush_old")
    key = "flush_id, flushed_at" if partitioned else "flush_id"
    op.execute(
        f"""
        CREATE TABLE stats_flush (
            flush_id varchar(64) NOT NULL,
            recipes integer NOT NULL,
            views bigint NOT NULL,
            flushed_at timestamptz NOT NULL,
            CONSTRAINT pk_stats_flush PRIMARY KEY ({key})
        ) {"PARTITION BY RANGE (flushed_at)" if partitioned else ""}
        """
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside_notification("notification_unpartitioned")
    _notification_table(partitioned=True)
    _month_partitions("notification")
    _notification_indexes()
    op.execute(
        f"INSERT INTO notification ({NOTIFICATION_COLUMNS}) "
        f"SELECT {NOTIFICATION_COLUMNS} FROM notification_unpartitioned"
    )
    op.execute("DROP TABLE notification_unpartitioned")

    _stats_flush_table("stats_flush_unpartitioned", partitioned=True)
    _month_partitions("stats_flush")
    op.execute(
        f"INSERT INTO stats_flush (flush_id, recipes, views, flushed_at) "
        f"SELECT flush_id, recipes, views, {FLUSH_TIME_SQL} FROM stats_flush_unpartitioned"
    )
    op.execute("DROP TABLE stats_flush_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside_notification("notification_partitioned")
    _notification_table(partitioned=False)
    _notification_indexes()
    # Without created_at in the key, one row per (user, kind, recipe) is kept: they never differ in it anyway.
    op.execute(
        f"INSERT INTO notification ({NOTIFICATION_COLUMNS}) SELECT {NOTIFICATION_COLUMNS} "
        "FROM notification_partitioned ON CONFLICT DO NOTHING"
    )
    op.execute("DROP TABLE notification_partitioned")

    _stats_flush_table("stats_flush_partitioned", partitioned=False)
    op.execute("INSERT INTO stats_flush SELECT * FROM stats_flush_partitioned ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE stats_flush_partitioned")
