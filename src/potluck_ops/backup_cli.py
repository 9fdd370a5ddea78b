"""`potluck backup now|list|verify|redis` and `potluck restore`: pgBackRest with point-in-time recovery.

Defaults point at `potluck cluster`'s stanza (<state dir>/pgbackrest/pgbackrest.conf, stanza main); --config and
--stanza point anywhere else (production: the database host's config).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from potluck_ops.backup import archive_range, backup_rows, verify
from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout, load_cluster_json
from potluck_ops.pgbackrest import BACKUP_TYPES, BUCKET, STANZA, PgBackRest
from potluck_ops.postgres import node_running
from potluck_ops.progress import console, step
from potluck_ops.redis_backup import backup_redis, restore_redis
from potluck_ops.restore import restore_into
from potluck_ops.s3 import S3Endpoint
from potluck_ops.takeover import promote_restored

backup_app = typer.Typer(help="PostgreSQL backups with pgBackRest (and the coordination Redis).", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", help="pgbackrest.conf (default: the local cluster's).")
STANZA_OPTION = typer.Option(STANZA, "--stanza", help="pgBackRest stanza.")


def _fail(exc: OpsError) -> typer.Exit:
    console.print("[red]error:[/red]", end=" ")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _backrest(config: Path | None, stanza: str) -> PgBackRest:
    return PgBackRest(config or Layout.discover().backup_dir / "pgbackrest.conf", stanza)


@backup_app.command()
def now(
    kind: str = typer.Option("incr", "--type", help=f"One of {', '.join(BACKUP_TYPES)} (incr without a full: full)."),
    config: Path | None = CONFIG,
    stanza: str = STANZA_OPTION,
) -> None:
    """Take a backup now."""
    try:
        backrest = _backrest(config, stanza)
        with step(f"pgBackRest {kind} backup"):
            backrest.backup(kind)
        latest = backup_rows(backrest.info())[-1]
        console.print(f"{latest.label}: {latest.type}, {latest.database_bytes / 1e6:.1f} MB, {latest.seconds}s")
    except OpsError as exc:
        raise _fail(exc) from None


@backup_app.command("list")
def list_backups(
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout instead of a table."),
    config: Path | None = CONFIG,
    stanza: str = STANZA_OPTION,
) -> None:
    """The backups in the repository (from `pgbackrest info`) and the WAL archive's range."""
    try:
        info = _backrest(config, stanza).info()
    except OpsError as exc:
        raise _fail(exc) from None
    rows, wal = backup_rows(info), archive_range(info)
    if as_json:
        payload = {"stanza": stanza, "backups": [r.as_json() for r in rows], "wal": wal}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title=f"stanza {stanza}: WAL {wal[0]} .. {wal[1]}" if wal else f"stanza {stanza}")
    for column in ("label", "type", "started (UTC)", "seconds", "database MB", "repo MB", "WAL start", "WAL stop"):
        table.add_column(column)
    for r in rows:
        mb = (f"{r.database_bytes / 1e6:.1f}", f"{r.repo_bytes / 1e6:.1f}")
        table.add_row(r.label, r.type, r.started, str(r.seconds), *mb, r.wal_start, r.wal_stop)
    console.print(table)


@backup_app.command("verify")
def verify_command(config: Path | None = CONFIG, stanza: str = STANZA_OPTION) -> None:
    """pgBackRest verify (checksums of every file) plus a restore of the latest backup, started and checked."""
    try:
        with step("verify the repository, restore the latest backup into a scratch dir"):
            found = verify(_backrest(config, stanza))
    except OpsError as exc:
        raise _fail(exc) from None
    sys.stdout.write(json.dumps(found.__dict__ | {"ok": found.ok}, indent=2) + "\n")
    if not found.ok:
        raise typer.Exit(1)


def restore_command(
    latest: bool = typer.Option(False, "--latest", help="Recover to the end of the WAL archive."),
    to: str | None = typer.Option(None, "--to", help='A point in time, e.g. "2026-12-05 12:00:00+00".'),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where to restore (default: <state>/pg/restored)."),
    port: int | None = typer.Option(None, "--port", help="Port of the restored copy (default: a free one)."),
    promote: bool = typer.Option(False, "--promote", help="Make it the local cluster's primary (cluster down)."),
    force: bool = typer.Option(False, "--force", help="Stop what uses --data-dir and move its data aside."),
    config: Path | None = CONFIG,
    stanza: str = STANZA_OPTION,
) -> None:
    """Restore PostgreSQL into a fresh data dir, start it and check it; --promote makes it the new primary."""
    try:
        if latest == (to is not None):
            raise OpsError("say what to restore: exactly one of --latest or --to TIME")
        layout = Layout.discover()
        target = data_dir or layout.pg_data("restored")
        if promote:
            info = load_cluster_json(layout) or {}
            if data_dir is not None:
                raise OpsError("--promote restores into the cluster's own directory: drop --data-dir")
            if info and not force and _cluster_pg_running(layout):
                raise OpsError("refusing to promote while the cluster runs: `potluck cluster down` first")
        with step(f"restore {'the latest point' if latest else to} into {target}"):
            node = restore_into(_backrest(config, stanza), target, to=to, port=port, force=force)
        console.print(f"restored in {node.restore_seconds:.1f}s, recovered in {node.recovery_seconds:.1f}s")
        sys.stdout.write(json.dumps({"data_dir": str(target), "port": node.port, "checks": node.checks}) + "\n")
        if promote:
            node.stop()
            moved = promote_restored(layout, target)
            console.print(f"the restored copy is the primary now; old data moved to {', '.join(moved)}")
            console.print("`potluck cluster up` starts it and makes new replicas from it")
    except OpsError as exc:
        raise _fail(exc) from None


def _cluster_pg_running(layout: Layout) -> bool:
    return any(node_running(layout.pg_data(n)) for n in ["primary", *layout.replica_names()])


def _cluster_s3(layout: Layout) -> tuple[S3Endpoint, dict[str, Any]]:
    info = load_cluster_json(layout) or {}
    s3 = info.get("backup", {}).get("s3")
    if not s3:
        raise OpsError(f"no backup endpoint in {layout.cluster_json}: start the cluster (`potluck cluster up`)")
    return S3Endpoint(s3["host"], s3["port"], ca_file=layout.s3 / "tls" / "cert.pem"), info


@backup_app.command("redis")
def redis_backup_command() -> None:
    """Copy the coordination Redis's RDB (after a BGSAVE) and AOF files to the backup bucket."""
    try:
        layout = Layout.discover()
        endpoint, info = _cluster_s3(layout)
        port = info["redis"]["coord"]["port"]
        with step("Redis coord: BGSAVE, upload RDB + AOF"):
            manifest = backup_redis(endpoint, BUCKET, data_dir=layout.redis / "coord", port=port)
    except OpsError as exc:
        raise _fail(exc) from None
    sys.stdout.write(json.dumps(manifest, indent=2) + "\n")


@backup_app.command("redis-restore")
def redis_restore_command(
    into: Path = typer.Option(..., "--into", help="The data dir of a stopped Redis (empty of RDB/AOF files)."),
    taken_at: str | None = typer.Option(None, "--taken-at", help="Which copy (default: the latest)."),
) -> None:
    """Download a copy of the coordination Redis's files into a data dir; then start Redis on it."""
    try:
        layout = Layout.discover()
        endpoint, info = _cluster_s3(layout)
        port = info.get("redis", {}).get("coord", {}).get("port")
        manifest = restore_redis(endpoint, BUCKET, target=into, port=port, stamp=taken_at)
    except OpsError as exc:
        raise _fail(exc) from None
    console.print(f"restored the copy of {manifest['taken_at']} into {into}: start Redis with --dir {into}")
