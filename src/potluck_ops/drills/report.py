"""A drill's result: one table row on the console, the same figures as JSON in a file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from potluck_ops.progress import console


def report(drill: str, result: Mapping[str, Any], json_out: Path | None) -> Path:
    """Print `result` as one row (columns in its order) and write it, with the drill's name and time, as JSON."""
    table = Table(title=f"drill {drill}", title_justify="left")
    for key in result:
        table.add_column(key, overflow="fold")
    table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in result.values()))
    console.print(table)
    path = json_out or Path(f"drill-{drill}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json")
    payload = {"drill": drill, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
