"""The coordination Redis's persistence files (RDB and AOF) copied to the backup bucket, and back.

The coordination instance (deploy/redis/coord.conf) holds what is not derived from PostgreSQL: the Celery broker's
queues, rate-limit counters, view counts not yet flushed, search analytics. It persists itself (AOF everysec plus
an RDB every 5 minutes when anything changed); this copies both off the machine. The cache instance is never
backed up: every key there is a copy with a TTL, refilled from PostgreSQL on a miss.

Layout in the bucket: redis/<role>/<UTC time>/dump.rdb, appendonlydir/..., manifest.json (sizes, sha256).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from potluck_ops.failures import OpsError
from potluck_ops.ports import HOST
from potluck_ops.redis import redis_ping
from potluck_ops.s3 import S3Endpoint

PREFIX = "redis"


def _snapshot(port: int, timeout: float = 120) -> None:
    """BGSAVE and wait until it finished, so dump.rdb is whole and recent. Counted by INFO's rdb_saves
    (Redis 7): LASTSAVE has one-second resolution and does not move for a save in the same second."""
    client = redis.Redis(host=HOST, port=port, socket_timeout=5)
    try:
        before = int(client.info("persistence")["rdb_saves"])
        try:
            client.bgsave()
        except redis.ResponseError as exc:  # a save already running: it counts
            if "in progress" not in str(exc):
                raise
        deadline = time.monotonic() + timeout
        while True:
            info = client.info("persistence")
            if int(info["rdb_saves"]) > before and not int(info["rdb_bgsave_in_progress"]):
                break
            if time.monotonic() > deadline:
                raise OpsError(f"Redis on port {port}: BGSAVE did not finish within {timeout:.0f}s")
            time.sleep(0.05)
        if info.get("rdb_last_bgsave_status") != "ok":
            raise OpsError(f"Redis on port {port}: BGSAVE failed (see its log)")
    finally:
        client.close()


def _files(data_dir: Path) -> list[Path]:
    files = [data_dir / "dump.rdb"] if (data_dir / "dump.rdb").is_file() else []
    aof = data_dir / "appendonlydir"
    if aof.is_dir():
        files += sorted(p for p in aof.iterdir() if p.is_file())
    return files


def backup_redis(
    endpoint: S3Endpoint, bucket: str, *, data_dir: Path, port: int, role: str = "coord"
) -> dict[str, Any]:
    """Snapshot, then upload dump.rdb and the AOF files with a manifest; the manifest."""
    _snapshot(port)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{PREFIX}/{role}/{stamp}"
    client = endpoint.client()
    manifest: dict[str, Any] = {"role": role, "taken_at": stamp, "files": {}}
    for path in _files(data_dir):
        # The AOF's last file may be growing: what is read is a prefix, which Redis loads (aof-load-truncated).
        body = path.read_bytes()
        name = str(path.relative_to(data_dir))
        client.put_object(Bucket=bucket, Key=f"{base}/{name}", Body=body)
        manifest["files"][name] = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    if not manifest["files"]:
        raise OpsError(f"no dump.rdb or appendonlydir in {data_dir}: is it the Redis data dir?")
    client.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
    return manifest


def list_redis_backups(endpoint: S3Endpoint, bucket: str, role: str = "coord") -> list[str]:
    """The times of the stored copies, oldest first."""
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/{role}/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return sorted({k.split("/")[2] for k in keys if k.endswith("/manifest.json")})


def restore_redis(
    endpoint: S3Endpoint,
    bucket: str,
    *,
    target: Path,
    port: int | None = None,
    stamp: str | None = None,
    role: str = "coord",
) -> dict[str, Any]:
    """Download a copy (the latest by default) into the data dir `target` of a stopped Redis; its manifest.

    Refuses while a Redis answers on `port` (it would overwrite the files at its next save) and when `target`
    already holds persistence files. Start Redis on `target` afterwards: it loads the AOF (or the RDB without one).
    """
    if port is not None and redis_ping(port):
        raise OpsError(f"refusing to restore Redis into {target}: a Redis answers on port {port}; stop it first")
    if _files(target):
        raise OpsError(f"refusing to restore Redis into {target}: it already holds dump.rdb or appendonlydir")
    stamps = list_redis_backups(endpoint, bucket, role)
    if not stamps:
        raise OpsError(f"no Redis backup of {role} in s3://{bucket}/{PREFIX}/{role}/")
    chosen = stamp or stamps[-1]
    client = endpoint.client()
    base = f"{PREFIX}/{role}/{chosen}"
    manifest: dict[str, Any] = json.loads(client.get_object(Bucket=bucket, Key=f"{base}/manifest.json")["Body"].read())
    for name, meta in manifest["files"].items():
        body = client.get_object(Bucket=bucket, Key=f"{base}/{name}")["Body"].read()
        if hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise OpsError(f"{base}/{name}: checksum mismatch, the copy is damaged")
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return manifest
