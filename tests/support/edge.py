"""Counting what reached a real Varnish edge node: its shared memory log, read with varnishlog."""

from __future__ import annotations

import subprocess
from pathlib import Path


def purges_at(workdir: Path, key: str) -> int:
    """PURGE requests for surrogate key `key` the node at `workdir` (varnishd -n) received, heartbeats left out
    (they carry X-Edge-Lease and deliver purge debt, not a write's purge)."""
    query = f'ReqMethod eq "PURGE" and ReqHeader:xkey-purge ~ "{key}" and not ReqHeader:X-Edge-Lease'
    # -d: the log from its start, then exit; one ReqMethod line per matching request.
    args = ["varnishlog", "-n", str(workdir), "-d", "-g", "request", "-q", query, "-i", "ReqMethod"]
    done = subprocess.run(args, capture_output=True, timeout=30, check=True)
    return sum(1 for line in done.stdout.decode().splitlines() if line.split()[1:3] == ["ReqMethod", "PURGE"])
