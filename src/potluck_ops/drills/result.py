"""One drill run's result: the figures it measured, printed as one table row and written as a JSON file.

A drill fills `figures` (name -> number, None when it could not be measured) and `goals` (name -> the value it
must not exceed, e.g. 0 failed reads); `passed` is whether every goal held.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

Figure = float | int | None


@dataclass
class DrillResult:
    drill: str
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_seconds: float = 0.0
    figures: dict[str, Figure] = field(default_factory=dict)
    goals: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_goals(self) -> list[str]:
        """The goals that did not hold (an unmeasured figure does not hold its goal)."""
        failed = []
        for name, limit in self.goals.items():
            value = self.figures.get(name)
            if value is None or value > limit:
                failed.append(name)
        return failed

    @property
    def passed(self) -> bool:
        return not self.failed_goals

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "failed_goals": self.failed_goals}

    def write(self, directory: Path) -> Path:
        """`<directory>/drill-<name>-<timestamp>.json`; its path."""
        directory.mkdir(parents=True, exist_ok=True)
        stamp = self.started_at.replace(":", "").replace("-", "").replace("+0000", "Z")
        path = directory / f"drill-{self.drill}-{stamp}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def format_figure(value: Figure) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def results_table(results: Sequence[DrillResult], title: str = "drills") -> Table:
    """One row per run: the drill, each figure (columns: the union, in first-seen order), pass or fail."""
    columns: dict[str, None] = {}
    for result in results:
        columns.update(dict.fromkeys(result.figures))
    table = Table(title=title, title_justify="left")
    table.add_column("drill")
    for name in columns:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("goals")
    for result in results:
        verdict = "[green]met[/green]" if result.passed else f"[red]missed: {', '.join(result.failed_goals)}[/red]"
        table.add_row(result.drill, *(_cell(result.figures, name) for name in columns), verdict)
    return table


def _cell(figures: Mapping[str, Figure], name: str) -> str:
    return format_figure(figures[name]) if name in figures else ""
