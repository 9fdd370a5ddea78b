"""A restored copy becomes the local cluster's primary: the old data dirs are moved aside (never deleted), the
copy takes the primary's place, and the next `potluck cluster up` starts it (archiving on again, a new timeline
in the same stanza) and makes fresh replicas from it with pg_basebackup."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from potluck_ops.failures import OpsError
from potluck_ops.layout import Layout
from potluck_ops.postgres import node_running


def promote_restored(layout: Layout, restored: Path) -> list[str]:
    """Move primary and replica dirs aside and put `restored` in the primary's place; the names moved to."""
    names = ["primary", *layout.replica_names()]
    running = [n for n in names if node_running(layout.pg_data(n))]
    if running:
        raise OpsError(f"refusing to replace running nodes ({', '.join(running)}): `potluck cluster down` first")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    moved = []
    for name in names:
        current = layout.pg_data(name)
        if current.exists():
            aside = current.with_name(f"{name}.replaced-{stamp}")
            current.rename(aside)
            moved.append(aside.name)
    restored.rename(layout.pg_data("primary"))
    return moved
