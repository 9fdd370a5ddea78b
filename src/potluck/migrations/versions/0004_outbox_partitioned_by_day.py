"""the outbox range-partitioned by created_at, one partition per day (PostgreSQL only)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 16:30:00.000000

handled_event (a handler's record of an event) is range-partitioned by event_id in blocks of 1,000,000 ids,
since its key (event_id, handler) must hold the partition key: a block is dropped once its events are gone.

The 7-day purge then drops whole days (events/repository.py: OutboxRepository.maintain_partitions, the
`events.partitions` job) instead of deleting millions of rows and leaving the table and its indexes to vacuum.
PostgreSQL requires the partition key in every unique constraint, so the primary key becomes (id, created_at);
ids still come from the same sequence, so each is still unique. A partitioned outbox keeps its rows: they are
copied into the new table in this migration (one INSERT ... SELECT: for a large outbox run it in a quiet moment,
or drain and purge first). SQLite (the embedded default) keeps its plain table: nothing to do there.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, topic, aggregate_type, aggregate_id, payload, status, attempts, available_at, claimed_until, claimed_by, "
    "last_error, created_at, delivered_at"
)
# Older rows than this go to the default partition (the first purge drops nothing of them; the DELETE purge does).
BACKFILL_DAYS = 14
DAYS_AHEAD = 3
HANDLED_BLOCK = 1_000_000
HANDLED_BLOCKS_AHEAD = 2


def _indexes(table: str) -> None:
    op.execute(f"CREATE INDEX idx_outbox_pending ON {table} (id) WHERE status = 'pending'")
    op.execute(f"CREATE INDEX idx_outbox_pending_aggregate ON {table} (aggregate_id, id) WHERE status = 'pending'")
    op.execute(f"CREATE INDEX idx_outbox_status_created ON {table} (status, created_at)")


def _set_aside(old: str) -> None:
    """Rename the current outbox (its key and indexes too, so the new table can take their names)."""
    op.execute(f"ALTER TABLE outbox_event RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_outbox_event TO pk_outbox_event_old")
    for index in ("idx_outbox_pending", "idx_outbox_pending_aggregate", "idx_outbox_status_created"):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
    op.execute("ALTER SEQUENCE outbox_event_id_seq OWNED BY NONE")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside("outbox_event_unpartitioned")
    op.execute(
        """
        CREATE TABLE outbox_event (
            id bigint NOT NULL DEFAULT nextval('outbox_event_id_seq'),
            topic varchar(64) NOT NULL,
            aggregate_type varchar(32) NOT NULL,
            aggregate_id uuid NOT NULL,
            payload json NOT NULL,
            status varchar(16) NOT NULL,
            attempts integer NOT NULL,
            available_at timestamptz NOT NULL,
            claimed_until timestamptz,
            claimed_by varchar(100),
            last_error text,
            created_at timestamptz NOT NULL,
            delivered_at timestamptz,
            CONSTRAINT pk_outbox_event PRIMARY KEY (id, created_at)
        ) PARTITION BY RANGE (created_at)
        """
    )
    op.execute("ALTER SEQUENCE outbox_event_id_seq OWNED BY outbox_event.id")
    op.execute("CREATE TABLE outbox_event_default PARTITION OF outbox_event DEFAULT")
    today = datetime.now(UTC).date()
    for n in range(-BACKFILL_DAYS, DAYS_AHEAD + 1):
        day = today + timedelta(days=n)
        start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
        op.execute(
            f"CREATE TABLE outbox_event_p{day:%Y%m%d} PARTITION OF outbox_event "
            f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
        )
    _indexes("outbox_event")
    op.execute(f"INSERT INTO outbox_event ({COLUMNS}) SELECT {COLUMNS} FROM outbox_event_unpartitioned")
    op.execute("DROP TABLE outbox_event_unpartitioned")
    _partition_handled_events()


def _partition_handled_events() -> None:
    op.execute("ALTER TABLE handled_event RENAME TO handled_event_unpartitioned")
    op.execute("ALTER TABLE handled_event_unpartitioned RENAME CONSTRAINT pk_handled_event TO pk_handled_event_old")
    op.execute(
        """
        CREATE TABLE handled_event (
            event_id bigint NOT NULL,
            handler varchar(100) NOT NULL,
            handled_at timestamptz NOT NULL,
            CONSTRAINT pk_handled_event PRIMARY KEY (event_id, handler)
        ) PARTITION BY RANGE (event_id)
        """
    )
    op.execute("CREATE TABLE handled_event_default PARTITION OF handled_event DEFAULT")
    last = op.get_bind().exec_driver_sql("SELECT last_value FROM outbox_event_id_seq").scalar() or 0
    first = int(last) // HANDLED_BLOCK * HANDLED_BLOCK
    for n in range(HANDLED_BLOCKS_AHEAD + 1):
        start = first + n * HANDLED_BLOCK
        op.execute(
            f"CREATE TABLE handled_event_b{start} PARTITION OF handled_event "
            f"FOR VALUES FROM ({start}) TO ({start + HANDLED_BLOCK})"
        )
    # Records of older ids (before the first block) land in the default partition.
    op.execute(
        "INSERT INTO handled_event (event_id, handler, handled_at) "
        "SELECT event_id, handler, handled_at FROM handled_event_unpartitioned"
    )
    op.execute("DROP TABLE handled_event_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE handled_event RENAME TO handled_event_partitioned")
    op.execute("ALTER TABLE handled_event_partitioned RENAME CONSTRAINT pk_handled_event TO pk_handled_event_old")
    op.execute(
        "CREATE TABLE handled_event (LIKE handled_event_partitioned, CONSTRAINT pk_handled_event "
        "PRIMARY KEY (event_id, handler))"
    )
    op.execute("INSERT INTO handled_event SELECT * FROM handled_event_partitioned")
    op.execute("DROP TABLE handled_event_partitioned")
    _set_aside("outbox_event_partitioned")
    op.execute(
        "CREATE TABLE outbox_event (LIKE outbox_event_partitioned INCLUDING DEFAULTS, "
        "CONSTRAINT pk_outbox_event PRIMARY KEY (id))"
    )
    op.execute("ALTER SEQUENCE outbox_event_id_seq OWNED BY outbox_event.id")
    _indexes("outbox_event")
    op.execute(f"INSERT INTO outbox_event ({COLUMNS}) SELECT {COLUMNS} FROM outbox_event_partitioned")
    op.execute("DROP TABLE outbox_event_partitioned")
