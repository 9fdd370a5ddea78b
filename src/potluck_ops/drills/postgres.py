"""PostgreSQL drills on the local topology (Patroni + etcd), each under the steady load of drills/load.py.

primary-crash      SIGKILL the leader's Patroni and its postmaster (a host crash); writes resume once Patroni
                   promotes the synchronous standby (about ttl). Then start the old leader's Patroni again: it
                   rewinds (pg_rewind), rejoins as a replica, and every API process puts it back in its read rotation.
switchover         `patronictl switchover --force` from the leader to the synchronous standby, planned maintenance.
network-partition  SIGSTOP a replica's Patroni and every process of its PostgreSQL for `hold` seconds, then SIGCONT:
                   the replica leaves the API processes' read rotation and enters it again.

Each returns a DrillResult and leaves the topology whole (a leader and every replica streaming) when it ends.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass

from potluck_ops.drills.failover import DrillOptions, load_figures, under_load
from potluck_ops.drills.load import Load
from potluck_ops.drills.patroni_faults import (
    address,
    crash_node,
    freeze,
    is_running_replica,
    node_processes,
    replica_count,
    replica_queries,
    restart_node,
    summary,
    switchover,
    wait_for,
    wait_rotation,
)
from potluck_ops.drills.probes import Target
from potluck_ops.drills.result import DrillResult
from potluck_ops.failures import OpsError
from potluck_ops.patroni import cluster_ready

# The goal for a leader crash (the median of runs); ttl is 10 s, so about 10 s is expected.
WRITE_OUTAGE_GOAL = 15.0
REJOIN_TIMEOUT = 120.0
ROTATION_TIMEOUT = 60.0
WHOLE_TIMEOUT = 90.0


@dataclass(frozen=True)
class PartitionOptions:
    hold: float = 15.0  # seconds the replica stays silent: more than ttl (10 s), so Patroni drops it too
    sync: bool = False  # partition the synchronous standby instead of an asynchronous replica


def _leader(target: Target) -> tuple[str, int]:
    state = summary(target)
    if state["leader"] is None:
        raise OpsError("Patroni names no leader: is the cluster up (`potluck cluster status`)?")
    return str(state["leader"]), int(state["timeline"])


def failure_kinds(load: Load, since: float) -> dict[str, int]:
    """Failed requests from `since` on, by kind, operation and answer (status or exception): what clients saw."""
    kinds = Counter(f"{s.kind} {s.op} {s.status or s.error}" for s in load.samples if s.started >= since and not s.ok)
    return dict(kinds.most_common())


async def _whole(target: Target) -> float | None:
    """Seconds until Patroni has a running leader and every replica streaming with a synchronous standby."""
    replicas = replica_count(target)
    return await wait_for(lambda: cluster_ready(summary(target), replicas), WHOLE_TIMEOUT, interval=0.25)


async def _new_leader(target: Target, old: str, timeline: int, timeout: float) -> float | None:
    """Seconds until Patroni names a running leader other than `old` on a later timeline."""

    def moved() -> bool:
        state = summary(target)
        return state["leader"] not in (None, old) and (state["timeline"] or 0) > timeline

    return await wait_for(moved, timeout)


async def primary_crash(target: Target, options: DrillOptions) -> DrillResult:
    """SIGKILL the leader under load; the write outage, acknowledged writes lost, and the old leader's return."""
    result = DrillResult("primary-crash")
    began = time.monotonic()
    leader, timeline = _leader(target)
    node = address(target, leader)
    async with under_load(target, options, probe_tasks=False) as run:
        await run.load.run_for(options.warmup)
        fault = time.monotonic()
        killed = await asyncio.to_thread(crash_node, target, leader)
        promoted = await _new_leader(target, leader, timeline, timeout=60)
        await run.load.run_for(max(0.0, options.observe - (time.monotonic() - fault)))
        restarted = time.monotonic()
        await asyncio.to_thread(restart_node, target, leader)
        rejoined = await wait_for(lambda: is_running_replica(summary(target), leader), REJOIN_TIMEOUT, 0.25)
        in_rotation, _ = await wait_rotation(target, node, inside=True, timeout=ROTATION_TIMEOUT)
        queries_before = await replica_queries(target, node)
        await run.load.run_for(2.0)  # reads reach it again
        served = await replica_queries(target, node) - queries_before
    result.figures = await load_figures(target, run.load, fault)
    result.figures |= {
        "promoted_s": promoted,
        "rejoined_s": rejoined,
        "in_rotation_s": None if in_rotation is None or rejoined is None else rejoined + in_rotation,
        "old_leader_queries": int(served),
    }
    result.goals = {"write_outage_s": WRITE_OUTAGE_GOAL, "acked_writes_missing": 0}
    result.goals |= {"rejoined_s": REJOIN_TIMEOUT, "in_rotation_s": REJOIN_TIMEOUT + ROTATION_TIMEOUT}
    after = summary(target)
    result.details = {"old_leader": leader, "new_leader": after["leader"], "timeline": [timeline, after["timeline"]]}
    result.details["failures"] = failure_kinds(run.load, fault)
    result.details |= {"killed": killed, "restarted_after_fault_s": round(restarted - fault, 2)}
    result.notes.append("rejoined_s and in_rotation_s count from the restart of the old leader's Patroni")
    if await _whole(target) is None:
        result.notes.append(f"the cluster was not whole again within {WHOLE_TIMEOUT:.0f} s")
    result.duration_seconds = round(time.monotonic() - began, 2)
    return result


async def planned_switchover(target: Target, options: DrillOptions) -> DrillResult:
    """`patronictl switchover` to the synchronous standby under load: the goal is no failed request."""
    result = DrillResult("switchover")
    began = time.monotonic()
    state = summary(target)
    leader, candidate, timeline = state["leader"], state["sync_standby"], state["timeline"]
    if leader is None or candidate is None:
        raise OpsError(f"a switchover needs a leader and a synchronous standby; Patroni says {state}")
    async with under_load(target, options, probe_tasks=False) as run:
        await run.load.run_for(options.warmup)
        fault = time.monotonic()
        output = await asyncio.to_thread(switchover, target, leader, candidate)
        command_s = time.monotonic() - fault
        promoted = await _new_leader(target, leader, timeline, timeout=60)
        whole = await _whole(target)
        await run.load.run_for(max(0.0, options.observe - (time.monotonic() - fault)))
    result.figures = await load_figures(target, run.load, fault)
    result.figures |= {
        "switchover_s": None if promoted is None else command_s + promoted,
        "whole_again_s": None if whole is None or promoted is None else command_s + promoted + whole,
    }
    result.goals = {"failed_reads": 0, "failed_writes": 0, "acked_writes_missing": 0}
    result.details = {"old_leader": leader, "new_leader": summary(target)["leader"], "patronictl": output[-500:]}
    result.details["failures"] = failure_kinds(run.load, fault)
    result.duration_seconds = round(time.monotonic() - began, 2)
    return result


def _partition_victim(target: Target, sync: bool) -> str:
    state = summary(target)
    replicas = [m for m in state["members"] if m["role"] in ("replica", "sync_standby") and m["state"] != "stopped"]
    wanted = "sync_standby" if sync else "replica"
    chosen = next((m["name"] for m in replicas if m["role"] == wanted), None)
    if chosen is None and replicas and not sync:
        chosen = replicas[0]["name"]  # one replica only: it is the synchronous standby
    if chosen is None:
        raise OpsError(f"no {wanted.replace('_', ' ')} to partition; Patroni says {state['members']}")
    return str(chosen)


async def network_partition(target: Target, options: DrillOptions, partition: PartitionOptions) -> DrillResult:
    """SIGSTOP a replica (Patroni and PostgreSQL) for `hold` seconds under load: no read may fail, and the node
    leaves and re-enters the read rotation of every API process."""
    result = DrillResult("network-partition")
    began = time.monotonic()
    victim = _partition_victim(target, partition.sync)
    node = address(target, victim)
    async with under_load(target, options, probe_tasks=False) as run:
        await run.load.run_for(options.warmup)
        pids = node_processes(target, victim)
        fault = time.monotonic()
        freeze(pids, signal.SIGSTOP)
        try:
            left, _ = await wait_rotation(target, node, inside=False, timeout=partition.hold)
            await run.load.run_for(max(0.0, partition.hold - (time.monotonic() - fault)))
        finally:
            freeze(pids, signal.SIGCONT)
        healed = time.monotonic()
        back, _ = await wait_rotation(target, node, inside=True, timeout=ROTATION_TIMEOUT)
        await run.load.run_for(max(0.0, options.observe - (time.monotonic() - healed)))
    result.figures = await load_figures(target, run.load, fault)
    result.figures |= {"left_rotation_s": left, "back_in_rotation_s": back}
    result.goals = {"failed_reads": 0, "acked_writes_missing": 0, "left_rotation_s": partition.hold}
    result.goals |= {"back_in_rotation_s": ROTATION_TIMEOUT}
    result.details = {"replica": victim, "address": node, "hold_s": partition.hold, "stopped_pids": pids}
    result.details["failures"] = failure_kinds(run.load, fault)
    result.notes.append("back_in_rotation_s counts from the SIGCONT")
    if await _whole(target) is None:
        result.notes.append(f"the cluster was not whole again within {WHOLE_TIMEOUT:.0f} s")
    result.duration_seconds = round(time.monotonic() - began, 2)
    return result
