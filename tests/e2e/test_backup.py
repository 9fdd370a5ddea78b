"""Backups end to end: a real PostgreSQL primary archiving through real pgBackRest to a local S3 server (moto behind
nginx TLS), full + incremental + WAL, a point-in-time restore between two known writes, verify catching a
corrupted file, and restore refusing a running cluster's directory (the library and the CLI's message).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from potluck.backup.runner import BackupRunner
from potluck.config import BackupSettings
from potluck_ops.backup import backup_rows, verify
from potluck_ops.failures import OpsError
from potluck_ops.layout import find_repo_root
from potluck_ops.ports import pick_free_ports
from potluck_ops.processes import start_logged
from potluck_ops.redis import redis_ping
from potluck_ops.redis_backup import backup_redis, restore_redis
from potluck_ops.restore import discard, restore_into
from potluck_ops.s3 import apply_bucket_config, ensure_bucket
from potluck_ops.scratch import BackupLab
from tests.support.eventually import eventually_sync

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="needs pgbackrest (apt)")


@pytest.fixture(scope="module")
def lab() -> Iterator[BackupLab]:
    with BackupLab(archive_timeout=5) as started:
        started.psql("CREATE TABLE note (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        yield started


def _archive_now(lab: BackupLab) -> None:
    """Switch to a new WAL segment and wait until the archive holds the one that was current."""
    wal = lab.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    lab.psql("SELECT pg_switch_wal()")
    archived = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"
    eventually_sync(lambda: lab.psql(archived, db="postgres") >= wal, 30, message=f"{wal} archived")


def test_full_incremental_and_wal_restore_to_the_latest_point(lab: BackupLab) -> None:
    lab.psql("INSERT INTO note (id) SELECT g FROM generate_series(1, 1000) g")
    lab.backrest.backup("full")
    lab.psql("INSERT INTO note (id) SELECT g FROM generate_series(1001, 2000) g")
    lab.backrest.backup("incr")
    lab.psql("INSERT INTO note (id) VALUES (5000)")  # only in the WAL after the incremental
    _archive_now(lab)

    rows = backup_rows(lab.backrest.info())
    assert [r.type for r in rows][-2:] == ["full", "incr"]
    node = restore_into(lab.backrest, lab.root / "restored-latest")
    try:
        assert node.checks["in_recovery"] == "f"
        assert node.psql("SELECT count(*), max(id) FROM note").strip() == "2001|5000"
    finally:
        discard(node)


def test_point_in_time_restore_between_two_writes(lab: BackupLab) -> None:
    lab.psql("INSERT INTO note (id) VALUES (7001)")
    between = lab.psql("SELECT clock_timestamp()")
    time.sleep(1.0)
    lab.psql("INSERT INTO note (id) VALUES (7002)")
    _archive_now(lab)

    node = restore_into(lab.backrest, lab.root / "restored-pitr", to=between)
    try:
        assert node.psql("SELECT id FROM note WHERE id IN (7001, 7002)").split() == ["7001"]
    finally:
        discard(node)


def test_restore_refuses_a_running_clusters_directory(lab: BackupLab) -> None:
    with pytest.raises(OpsError, match="a running PostgreSQL uses it"):
        restore_into(lab.backrest, lab.data_dir)
    command = [sys.executable, "-m", "potluck.cli.main", "restore", "--latest"]
    command += ["--config", str(lab.backrest.conf), "--data-dir", str(lab.data_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "refusing to restore into" in result.stderr
    assert "--force" in result.stderr
    assert lab.psql("SELECT count(*) FROM note WHERE id = 5000") == "1"  # untouched


def test_verify_passes_then_detects_a_corrupted_backup_file(lab: BackupLab) -> None:
    found = verify(lab.backrest, scratch_parent=lab.root)
    assert found.ok, found
    assert endpoint_holds(lab)

    label = backup_rows(lab.backrest.info())[-1].label
    assert lab.endpoint is not None
    s3 = lab.endpoint.client()
    prefix = f"lab/backup/main/{label}/pg_data/base/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="potluck-backups", Prefix=prefix)["Contents"]]
    victim = max(keys, key=lambda k: s3.head_object(Bucket="potluck-backups", Key=k)["ContentLength"])
    s3.put_object(Bucket="potluck-backups", Key=victim, Body=b"\x00garbage" * 64)

    found = verify(lab.backrest, scratch_parent=lab.root)
    assert not found.ok
    assert not found.verify_ok, found.verify_output


def endpoint_holds(lab: BackupLab) -> bool:
    """The repository really is in the bucket (not on local disk)."""
    assert lab.endpoint is not None
    listing = lab.endpoint.client().list_objects_v2(Bucket="potluck-backups", Prefix="lab/archive/main/")
    return listing.get("KeyCount", 0) > 0


def test_the_scheduled_job_runs_pgbackrest_through_the_apps_runner(lab: BackupLab) -> None:
    before = len(backup_rows(lab.backrest.info()))
    settings = BackupSettings(enabled=True, pgbackrest_config=lab.backrest.conf)
    assert asyncio.run(BackupRunner(settings).postgres("incr")) == 1
    assert len(backup_rows(lab.backrest.info())) == before + 1
    assert asyncio.run(BackupRunner(BackupSettings()).postgres("incr")) == 0  # off by default


def test_media_bucket_versioning_and_replication_restore_a_deleted_image(lab: BackupLab) -> None:
    """deploy/s3/'s documents apply to the local server; a deleted image comes back by removing its delete marker."""
    assert lab.endpoint is not None
    ensure_bucket(lab.endpoint, "potluck-media")
    assert apply_bucket_config(lab.endpoint, "potluck-media", find_repo_root() / "deploy" / "s3") == [
        "versioning",
        "replication",
    ]
    s3 = lab.endpoint.client()
    assert (
        s3.get_bucket_replication(Bucket="potluck-media")["ReplicationConfiguration"]["Rules"][0]["Status"] == "Enabled"
    )
    key = "recipes/ab/abcdef-medium.webp"
    s3.put_object(Bucket="potluck-media", Key=key, Body=b"RIFF-image")
    s3.delete_object(Bucket="potluck-media", Key=key)
    versions = s3.list_object_versions(Bucket="potluck-media", Prefix=key)
    marker = next(m for m in versions["DeleteMarkers"] if m["IsLatest"])
    s3.delete_object(Bucket="potluck-media", Key=key, VersionId=marker["VersionId"])
    assert s3.get_object(Bucket="potluck-media", Key=key)["Body"].read() == b"RIFF-image"


def _redis(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", ""]
    args += ["--appendonly", "yes", "--appenddirname", "appendonlydir"]
    proc = start_logged(args, log=data_dir.parent / f"redis-{port}.log", env=os.environ, detach=False)
    eventually_sync(lambda: redis_ping(port), 20, message=f"redis on {port}")
    return proc


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_coordination_redis_files_go_to_the_bucket_and_come_back(lab: BackupLab) -> None:
    assert lab.endpoint is not None
    port, restored_port = pick_free_ports(2)
    proc = _redis(lab.root / "redis-coord", port)
    try:
        client = redis.Redis(port=port)
        client.set("celery-queue-item", "1")
        client.hset("views", mapping={"r1": 3})
        manifest = backup_redis(lab.endpoint, "potluck-backups", data_dir=lab.root / "redis-coord", port=port)
        assert "dump.rdb" in manifest["files"]
        with pytest.raises(OpsError, match="a Redis answers on port"):
            restore_redis(lab.endpoint, "potluck-backups", target=lab.root / "redis-new", port=port)
    finally:
        proc.terminate()
        proc.wait(10)
    restore_redis(lab.endpoint, "potluck-backups", target=lab.root / "redis-new", port=port)
    proc = _redis(lab.root / "redis-new", restored_port)
    try:
        client = redis.Redis(port=restored_port)
        assert client.get("celery-queue-item") == b"1"
        assert client.hget("views", "r1") == b"3"
    finally:
        proc.terminate()
        proc.wait(10)
