"""The restore drill: seed, back up, write, destroy, restore, and prove nothing acknowledged before the RPO bound
was lost.

1. A scratch primary archiving to its own local S3 (potluck_ops.scratch.BackupLab), migrated and seeded with
   `--recipes` recipes by the app's own CLI (a child process: potluck_ops never imports potluck).
2. A full backup; writes for `write_seconds` (each one a row in drill_write plus a recipe's view_count, its
   acknowledgement time recorded after COMMIT returned); an incremental backup; more writes.
3. The snapshot: checksums of recipe and of drill_write up to the last write, at the target point. Writes go on
   (drill_write only, so the snapshot's tables stay comparable) until the archive holds the snapshot's WAL, then
   `tail_seconds` more: the crash comes that far into a WAL segment that will never be archived.
4. The disaster: the postmaster is killed (immediate: the last WAL segment is never archived) and its data dir
   deleted. Then a restore to the latest point in a fresh dir, started, promoted, checked.
5. The checks: every acknowledged write up to the newest one recovered is there (no holes), every write
   acknowledged before `crash - archive_timeout` is there, and the snapshot's checksums match.

RTO: from the start of the restore to the checked, writable copy. RPO: the crash time minus the acknowledgement
time of the newest write recovered (what the archive_timeout bounds).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from potluck_ops.app import potluck_command
from potluck_ops.backup import backup_rows
from potluck_ops.failures import OpsError
from potluck_ops.postgres import pg_url
from potluck_ops.processes import run
from potluck_ops.restore import restore_into
from potluck_ops.scratch import BackupLab, require_tools

CHECKSUMS = {
    "recipe": "SELECT count(*) || ':' || md5(string_agg(md5(t::text), '' ORDER BY t.id)) FROM recipe t",
    "drill_write": "SELECT count(*) || ':' || md5(string_agg(md5(t::text), '' ORDER BY t.id)) FROM drill_write t "
    "WHERE t.id <= {max_id}",
}


@dataclass
class Writes:
    """Every acknowledged write: its id and the wall-clock time COMMIT returned."""

    acked: list[tuple[int, float]] = field(default_factory=list)

    @property
    def max_id(self) -> int:
        return self.acked[-1][0] if self.acked else 0


async def _write(
    conn: asyncpg.Connection, writes: Writes, *, seconds: float, rate: float, recipe_ids: list[Any] | None
) -> None:
    end = time.monotonic() + seconds
    rng = random.Random(len(writes.acked))
    while time.monotonic() < end:
        async with conn.transaction():
            write_id = await conn.fetchval("INSERT INTO drill_write (payload) VALUES ($1) RETURNING id", "x" * 64)
            if recipe_ids:
                await conn.execute(
                    "UPDATE recipe SET view_count = view_count + 1 WHERE id = $1", rng.choice(recipe_ids)
                )
        writes.acked.append((int(write_id), time.time()))
        await asyncio.sleep(1 / rate)


def _seed(lab: BackupLab, recipes: int) -> float:
    env = {**os.environ, "POTLUCK_DATABASE__URL": pg_url(lab.port), "POTLUCK_DATA_DIR": str(lab.root / "data")}
    env = {k: v for k, v in env.items() if not k.startswith("POTLUCK_REDIS")}
    began = time.monotonic()
    run([*potluck_command(), "migrate"], what="potluck migrate", env=env, timeout=600)
    users = max(10, recipes // 10)
    seed = [*potluck_command(), "seed", "--users", str(users), "--recipes", str(recipes)]
    run(seed, what="potluck seed", env=env, timeout=3600)
    return time.monotonic() - began


def _checksums(query: Any, max_id: int) -> dict[str, str]:
    return {table: query(sql.format(max_id=max_id)) for table, sql in CHECKSUMS.items()}


async def _write_phases(
    lab: BackupLab, result: dict[str, Any], *, write_seconds: float, rate: float, tail_seconds: float
) -> Writes:
    conn = await asyncpg.connect(host="127.0.0.1", port=lab.port, user="postgres", database="potluck")
    writes = Writes()
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM recipe ORDER BY random() LIMIT 1000")]
        await _write(conn, writes, seconds=write_seconds, rate=rate, recipe_ids=ids)
        result["incr_seconds"] = await asyncio.to_thread(lab.backrest.backup, "incr")
        await _write(conn, writes, seconds=write_seconds / 2, rate=rate, recipe_ids=ids)
        snapshot = {t: await conn.fetchval(sql.format(max_id=writes.max_id)) for t, sql in CHECKSUMS.items()}
        result["snapshot"], result["snapshot_max_id"] = snapshot, writes.max_id
        wal = await conn.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        deadline = time.monotonic() + lab.archive_timeout + 60
        # Writes go on (drill_write only) until the archive holds the snapshot's segment, at least 2 s more.
        floor = time.monotonic() + 2
        while (
            time.monotonic() < floor
            or (await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver") or "") < wal
        ):
            if time.monotonic() > deadline:
                raise OpsError(f"WAL segment {wal} not archived within archive_timeout + 60 s")
            await _write(conn, writes, seconds=0.5, rate=rate, recipe_ids=None)
        # The crash comes `tail_seconds` into a WAL segment: what is written since its start is what a crash loses.
        await _write(conn, writes, seconds=tail_seconds, rate=rate, recipe_ids=None)
    finally:
        await conn.close()
    return writes


def run_restore_drill(
    *,
    recipes: int,
    write_seconds: float = 20,
    tail_seconds: float = 30,
    rate: float = 50,
    archive_timeout: int = 60,
    root: Path | None = None,
) -> dict[str, Any]:
    """Run the whole drill on a scratch primary; the figures, flat (see the module's docstring)."""
    require_tools()
    result: dict[str, Any] = {"recipes": recipes}
    with BackupLab(root, archive_timeout=archive_timeout) as lab:
        result["seed_seconds"] = _seed(lab, recipes)
        lab.psql(
            "CREATE TABLE drill_write (id bigserial PRIMARY KEY, written_at timestamptz NOT NULL "
            "DEFAULT clock_timestamp(), payload text NOT NULL)"
        )
        result["full_seconds"] = lab.backrest.backup("full")
        phases = {"write_seconds": write_seconds, "rate": rate, "tail_seconds": tail_seconds}
        writes = asyncio.run(_write_phases(lab, result, **phases))
        crashed_at = time.time()
        lab.destroy_primary()
        began = time.monotonic()
        node = restore_into(lab.backrest, lab.root / "restored")
        result["rto_seconds"] = time.monotonic() - began
        present = {int(x) for x in node.psql("SELECT id FROM drill_write").split()}
        restored = _checksums(lambda sql: node.psql(sql).strip(), result.pop("snapshot_max_id"))
        snapshot = result.pop("snapshot")
        rows = backup_rows(lab.backrest.info())
        node.stop(mode="immediate")
    newest = max(present, default=0)
    newest_ack = max((at for i, at in writes.acked if i == newest), default=crashed_at)
    holes = [i for i, _ in writes.acked if i <= newest and i not in present]
    bound = crashed_at - archive_timeout
    missing_before_bound = [i for i, at in writes.acked if at <= bound and i not in present]
    full, incr = rows[0], rows[-1]
    result.update(
        full_mb=full.repo_bytes / 1e6,
        incr_mb=incr.repo_bytes / 1e6,
        database_mb=incr.database_bytes / 1e6,
        writes=len(writes.acked),
        restore_seconds=node.restore_seconds,
        recovery_seconds=node.recovery_seconds,
        rpo_seconds=crashed_at - newest_ack,
        lost_writes=len(writes.acked) - len([i for i, _ in writes.acked if i in present]),
        holes=len(holes),
        missing_before_rpo_bound=len(missing_before_bound),
        rows_checked=sum(int(v.split(":")[0]) for v in restored.values()),
        checksums_match=restored == snapshot,
    )
    result["ok"] = bool(result["checksums_match"] and not holes and not missing_before_bound)
    return result
