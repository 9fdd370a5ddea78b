"""Failure drills on the local topology, each under the steady load of potluck_ops.drills.load.

redis-cache-crash / redis-coord-crash  SIGKILL the master Sentinel names for that role; then put the killed
                                       instance back as a replica of the new master (the topology is whole again)
worker-crash                           SIGKILL the Celery worker (its process group: the pool too) while a relay
                                       holds a claim, restart it as `potluck cluster up` does

Each returns a DrillResult. The faults reach the system only through signals to pids from the state dir; the
figures come from the load's records, /metrics, the worker's log and read-only SQL on the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from potluck_ops.app import potluck_command
from potluck_ops.bringup import start_background_role, wait_worker_ready
from potluck_ops.drills.load import Load, LoadConfig, failures, missing_acked, p99, write_outage
from potluck_ops.drills.probes import (
    HitRateWatch,
    Target,
    TaskProbe,
    notification_fan_out,
    outbox_high_water,
    undelivered,
    wait_delivered,
    wait_in_delivery,
)
from potluck_ops.drills.result import DrillResult
from potluck_ops.failures import OpsError
from potluck_ops.processes import pid_alive, read_pid, wait_until
from potluck_ops.redis import redis_nodes, start_redis
from potluck_ops.sentinel import current_master_ports, wait_sentinels_ready

REDIS_DRILLS = {"redis-cache-crash": "cache", "redis-coord-crash": "coord"}
HIT_RATE_GOAL = 0.9
T = TypeVar("T")


@dataclass(frozen=True)
class DrillOptions:
    warmup: float = 5.0  # seconds of load before the fault
    observe: float = 15.0  # seconds of load from the fault on
    settle_timeout: float = 60.0  # for the outbox and the probe tasks to drain afterwards
    worker_down: float = 3.0  # worker-crash: how long the worker stays dead
    load: LoadConfig = field(default_factory=LoadConfig)


@dataclass
class Running:
    load: Load
    watch: HitRateWatch
    probe: TaskProbe | None


@contextlib.asynccontextmanager
async def under_load(target: Target, options: DrillOptions, *, probe_tasks: bool = True) -> AsyncIterator[Running]:
    """The load, the hit-rate watch and (optionally) the task probe run for the body of the block."""
    load = Load(target.lb_url, options.load)
    await load.start()
    stop = asyncio.Event()
    running = Running(load, HitRateWatch(target.metrics_urls), TaskProbe(target) if probe_tasks else None)
    tasks = [asyncio.create_task(running.watch.run(stop))]
    if running.probe is not None:
        tasks.append(asyncio.create_task(running.probe.run(stop)))
    try:
        yield running
    finally:
        stop.set()
        await load.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def load_figures(target: Target, load: Load, fault: float) -> dict[str, float | int | None]:
    """What every drill reports of its load: failures and p99 from the fault on, the write outage, and the
    acknowledged writes the primary does not hold."""
    p = p99(load.samples, fault)
    return {
        "failed_reads": failures(load.samples, "read", fault),
        "failed_writes": failures(load.samples, "write", fault),
        "write_outage_s": write_outage(load.samples, fault).seconds,
        "p99_ms": None if p is None else p * 1000,
        "requests": sum(s.started >= fault for s in load.samples),
        "acked_writes_missing": len(await missing_acked(load, target.primary_dsn)),
    }


def detached(start: Callable[[], T]) -> T:
    """Run `start`, which starts a server in its own session and drops its Popen: the server outlives the drill
    by design (`potluck cluster down` finds it by its pid file), so Popen's "still running" warning is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return start()


# ------------------------------------------------------------------------------------------------ Redis


def redis_master(target: Target, role: str) -> tuple[str, int]:
    """The instance of `role` that Sentinel names master now, and its port."""
    port = current_master_ports(target.sentinel_ports).get(role)
    if port is None:
        raise OpsError(f"no sentinel names a live {role} master: is the cluster up (`potluck cluster status`)?")
    for name in redis_nodes(role):
        if int(target.info["redis"][name]["port"]) == port:
            return name, port
    raise OpsError(f"the {role} master on port {port} is not an instance of this cluster")


async def wait_promoted(target: Target, role: str, old_port: int, timeout: float = 30) -> float | None:
    """Seconds until the sentinels name another live master for `role`; None if not within `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        port = await asyncio.to_thread(current_master_ports, target.sentinel_ports)
        if port.get(role) not in (None, old_port):
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    return None


def rejoin_as_replica(target: Target, role: str, name: str) -> None:
    """Start the killed instance again as a replica of the new master and wait until Sentinel sees it linked."""
    new_port = current_master_ports(target.sentinel_ports)[role]
    port = int(target.info["redis"][name]["port"])
    pid = detached(lambda: start_redis(target.layout, name, port, role=role, replica_of=new_port))
    target.info["redis"][name]["pid"] = pid
    target.save()
    wait_sentinels_ready(target.sentinel_ports, timeout=60)


async def redis_crash(target: Target, role: str, options: DrillOptions) -> DrillResult:
    """SIGKILL the `role` master under load; failed reads, lost tasks and events, hit-rate recovery."""
    result = DrillResult(f"redis-{role}-crash")
    began = time.monotonic()
    high_water = await outbox_high_water(target.primary_dsn)
    worker_pid = read_pid(target.layout.background_pid("worker"))
    since = worker_log_size(target)
    async with under_load(target, options) as run:
        await run.load.run_for(options.warmup)
        name, port = redis_master(target, role)
        pid = read_pid(target.layout.redis_pid(name))
        if pid is None:
            raise OpsError(f"no pid file for Redis {name}")
        fault = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        promoted = await wait_promoted(target, role, port)
        await run.load.run_for(max(0.0, options.observe - (time.monotonic() - fault)))
    result.details["killed"] = {"instance": name, "port": port, "pid": pid}
    await asyncio.to_thread(rejoin_as_replica, target, role, name)
    worker_now = read_pid(target.layout.background_pid("worker"))
    worker_died = worker_now != worker_pid or not pid_alive(worker_now)
    if worker_died:
        # Seen with the coordination master under load: kombu's worker exits on the lost broker connection
        # (docs/operations.md). Its supervisor restarts it (else the drill does), so the rest of the drill, and the
        # next one, have a worker; tasks_lost and events_lost say whether anything was lost meanwhile.
        by = "its supervisor" if supervised(target) else "the drill"
        result.notes.append(f"the Celery worker exited during the failover; restarted by {by}")
        await asyncio.to_thread(restart_worker, target, worker_pid, since)
    delivered = await wait_delivered(target.primary_dsn, high_water, options.settle_timeout)
    assert run.probe is not None
    lost_tasks = await _wait_tasks_run(run.probe, options.settle_timeout)
    result.figures = await load_figures(target, run.load, fault)
    result.figures |= {
        "promoted_s": promoted,
        "hit_rate_back_s": run.watch.recovery(fault, HIT_RATE_GOAL),
        "lowest_hit_rate": run.watch.lowest(fault),
        "tasks_sent": len(run.probe.sent),
        "tasks_lost": len(lost_tasks),
        "events_lost": await _events_lost(target, high_water, delivered),
        "worker_died": int(worker_died),
    }
    result.goals = {"failed_reads": 0, "tasks_lost": 0, "events_lost": 0, "acked_writes_missing": 0, "worker_died": 0}
    result.details |= {"lost_task_ids": lost_tasks[:20], "task_send_failures": run.probe.send_failures}
    result.details["hit_rates"] = run.watch.rates()
    result.duration_seconds = round(time.monotonic() - began, 2)
    return result


async def _wait_tasks_run(probe: TaskProbe, timeout: float) -> list[str]:
    """The probe's acknowledged tasks still not run after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    lost = probe.lost()
    while lost and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        lost = probe.lost()
    return lost


async def _events_lost(target: Target, high_water: int, delivered: float | None) -> int:
    """Events recorded during the drill and still not delivered once the system had `settle_timeout` to."""
    if delivered is not None:
        return 0
    return await undelivered(target.primary_dsn, high_water)


# ------------------------------------------------------------------------------------------------ the worker


def kill_worker(target: Target) -> int:
    """SIGKILL the worker's process group (it leads its own session: the pool children go with it); its pid."""
    pid = read_pid(target.layout.background_pid("worker"))
    if pid is None:
        raise OpsError("no worker pid file: is the cluster up?")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return pid


def worker_log_size(target: Target) -> int:
    log = target.layout.background_log("worker")
    return log.stat().st_size if log.exists() else 0


def supervised(target: Target) -> bool:
    """Whether a supervisor (potluck_ops/supervise.py) keeps the worker running."""
    return pid_alive(read_pid(target.layout.supervisor_pid("worker")))


def restart_worker(target: Target, old_pid: int | None, since: int) -> int:
    """The worker back and ready (its log from byte `since` says so); its pid, saved in cluster.json. Its
    supervisor restarts it; a cluster without one (started before supervision) gets it started as `cluster up`
    does."""
    layout = target.layout

    def restarted() -> bool:
        pid = read_pid(layout.background_pid("worker"))
        return pid is not None and pid != old_pid and pid_alive(pid)

    def start() -> int:
        if supervised(target):
            wait_until(restarted, what="the worker restarted by its supervisor", timeout=90)
            wait_worker_ready(layout, None, since=since)
        else:
            proc = start_background_role(layout, "worker", potluck_command(), {**os.environ, **target.env})
            wait_worker_ready(layout, proc, since=since)
        pid = read_pid(layout.background_pid("worker"))
        assert pid is not None
        return pid

    pid = detached(start)
    target.info["worker"]["pid"] = pid
    target.save()
    return pid


async def worker_crash(target: Target, options: DrillOptions) -> DrillResult:
    """SIGKILL the worker while it delivers, restart it; every event delivered, no effect doubled."""
    result = DrillResult("worker-crash")
    began = time.monotonic()
    dsn = target.primary_dsn
    high_water = await outbox_high_water(dsn)
    async with under_load(target, options, probe_tasks=False) as run:
        await run.load.run_for(options.warmup)
        mid_delivery = await wait_in_delivery(dsn, timeout=10)
        since = worker_log_size(target)
        fault = time.monotonic()
        old_pid = kill_worker(target)
        await run.load.run_for(options.worker_down)
        new_pid = await asyncio.to_thread(restart_worker, target, old_pid, since)
        ready = time.monotonic()
        await run.load.run_for(max(0.0, options.observe - (time.monotonic() - fault)))
    delivered = await wait_delivered(dsn, high_water, options.settle_timeout)
    drained = time.monotonic()
    author = run.load.author
    assert author is not None
    fan_out = await notification_fan_out(dsn, author.id, author.follower_ids)
    result.figures = await load_figures(target, run.load, fault)
    result.figures |= {
        "worker_back_s": ready - fault,
        "drained_after_s": None if delivered is None else drained - ready,
        "events_lost": await _events_lost(target, high_water, delivered),
        "notifications_missing": fan_out.missing,
        "duplicate_effects": fan_out.duplicates,
    }
    result.goals = {"events_lost": 0, "notifications_missing": 0, "duplicate_effects": 0, "acked_writes_missing": 0}
    result.details = {
        "killed_pid": old_pid,
        "new_pid": new_pid,
        "killed_mid_delivery": mid_delivery,
        "recipes": fan_out.recipes,
        "followers": len(author.follower_ids),
        "expected_notifications": fan_out.expected,
    }
    if not mid_delivery:
        result.notes.append("no relay held a claim within 10 s: killed anyway")
    result.duration_seconds = round(time.monotonic() - began, 2)
    return result
