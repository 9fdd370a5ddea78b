"""The failure drills on a real topology: `potluck cluster up` once for the module (temp state dir, free ports,
small seed), then redis-cache-crash, worker-crash and primary-crash with short durations, asserting their figures.
Each drill leaves the topology whole (the killed Redis rejoins as a replica, the worker is restarted, the old
PostgreSQL leader rejoins as a replica), so they share it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from potluck_ops.drills.failover import DrillOptions, redis_crash, worker_crash
from potluck_ops.drills.load import LoadConfig
from potluck_ops.drills.patroni_faults import is_running_replica, summary
from potluck_ops.drills.postgres import primary_crash
from potluck_ops.drills.probes import Target
from potluck_ops.failures import tail
from potluck_ops.layout import Layout, find_repo_root
from potluck_ops.pgbackrest import PgBackRest
from potluck_ops.ports import pick_free_ports
from potluck_ops.postgres import CLUSTER_TOOLS, PG
from tests.harness._util import default_parent_dir

MISSING = [str(p) for p in PG.missing(CLUSTER_TOOLS)] + [
    tool for tool in ("redis-server", "redis-sentinel", "nginx") if shutil.which(tool) is None
]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/install-deps.sh)")

# Short runs: the figures asserted are counts that must be 0 whatever the length.
OPTIONS = DrillOptions(warmup=3, observe=8, settle_timeout=60, worker_down=2, load=LoadConfig(readers=3))
# The leader's key expires after ttl (10 s): writes come back after about that; the bound is 30 s.
WRITES_BACK_WITHIN = 30


def _logs(root: Path) -> str:
    return "\n".join(f"--- {log} ---\n{tail(log, 30)}" for log in sorted(root.rglob("*.log")))


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    # mkdtemp, not tmp_path: pytest's root-only (0700) base dir would keep the postgres user out.
    root = Path(tempfile.mkdtemp(prefix="potluck-drills-", dir=default_parent_dir()))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    env = {**os.environ, "POTLUCK_CLUSTER_DIR": str(root)}
    cluster = [sys.executable, "-m", "potluck.cli.main", "cluster"]
    lb_port = pick_free_ports(1)[0]
    args = ["up", "--api", "2", "--replicas", "1", "--lb-port", str(lb_port), "--users", "40", "--recipes", "200"]
    try:
        up = subprocess.run([*cluster, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert up.returncode == 0, f"cluster up failed:\n{up.stdout}\n{up.stderr}\n{_logs(root)}"
        yield Target.discover(Layout(root, find_repo_root()))
    finally:
        subprocess.run([*cluster, "down", "--purge"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)


async def test_redis_cache_master_crash_fails_no_read(target: Target) -> None:
    result = await redis_crash(target, "cache", OPTIONS)
    figures = result.figures
    assert figures["promoted_s"] is not None, result.to_json()
    assert figures["failed_reads"] == 0, result.to_json()
    assert figures["failed_writes"] == 0, result.to_json()
    assert figures["acked_writes_missing"] == 0, result.to_json()
    assert figures["events_lost"] == 0, result.to_json()
    assert figures["tasks_lost"] == 0, result.to_json()
    assert figures["tasks_sent"], result.to_json()
    assert figures["hit_rate_back_s"] is not None, result.to_json()
    assert result.passed, result.to_json()


async def test_worker_crash_loses_no_event_and_doubles_no_effect(target: Target) -> None:
    result = await worker_crash(target, OPTIONS)
    figures = result.figures
    assert result.details["killed_mid_delivery"], result.to_json()
    assert result.details["expected_notifications"] > 0, result.to_json()
    assert figures["events_lost"] == 0, result.to_json()
    assert figures["notifications_missing"] == 0, result.to_json()
    assert figures["duplicate_effects"] == 0, result.to_json()
    assert figures["acked_writes_missing"] == 0, result.to_json()
    assert figures["failed_reads"] == 0, result.to_json()
    assert result.passed, result.to_json()


async def test_primary_crash_loses_no_acknowledged_write_and_the_old_leader_rejoins(target: Target) -> None:
    result = await primary_crash(target, OPTIONS)
    figures = result.figures
    assert figures["failed_writes"], f"the crash went unnoticed: {result.to_json()}"
    outage = figures["write_outage_s"]
    assert outage is not None, result.to_json()
    assert outage < WRITES_BACK_WITHIN, result.to_json()
    assert figures["acked_writes_missing"] == 0, result.to_json()  # synchronous mode: RPO 0
    assert result.details["new_leader"] != result.details["old_leader"], result.to_json()
    assert figures["rejoined_s"] is not None, result.to_json()
    assert figures["in_rotation_s"] is not None, result.to_json()
    assert is_running_replica(summary(target), result.details["old_leader"]), summary(target)
    assert result.passed, result.to_json()
    # The new leader archives its WAL to the same stanza (each node names its own data dir as pg1 in its
    # archive_command): pgbackrest check switches a segment on the leader and waits until it is in the repository.
    PgBackRest(Path(target.info["backup"]["pgbackrest_conf"])).check()
