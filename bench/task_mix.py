"""The mix's arithmetic, without Locust: which tasks `--only` keeps, the user classes' weights, each task's share
of the iterations and its share of the mix's CPU per request (bench/locustfile.py, bench/endpoint_cost.py).

Standard library only, so the unit tests import it without the loadtest group; the locustfile imports it as
`task_mix` (Locust puts the locustfile's directory on sys.path, and so does `python bench/locustfile.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def task_name(task: Any) -> str:
    return str(getattr(task, "__name__", task))


def task_weights(tasks: Sequence[Any]) -> dict[str, int]:
    """A user class's task list (Locust repeats each task `weight` times) as name -> weight, in the class's order."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[task_name(t)] = counts.get(task_name(t), 0) + 1
    return counts


def select_tasks(tasks: Mapping[str, Sequence[T]], only: str) -> dict[str, list[T]]:
    """The tasks each user class (name -> its task list) keeps under `--only`; all of them when it is empty.

    A name is a task's (`recipe`: every class that has it) or `Class.task` (`Visitor.recipe`: that class only).
    ValueError names every unknown name and lists the known ones.
    """
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    if not wanted:
        return {cls: list(ts) for cls, ts in tasks.items()}
    known = {task_name(t) for ts in tasks.values() for t in ts}
    known |= {f"{cls}.{task_name(t)}" for cls, ts in tasks.items() for t in ts}
    if unknown := sorted(wanted - known):
        names = ", ".join(f"{cls}.{name}" for cls, ts in tasks.items() for name in task_weights(ts))
        raise ValueError(f"--only: no task named {', '.join(unknown)} in the mix; its tasks: {names}")
    return {
        cls: [t for t in ts if task_name(t) in wanted or f"{cls}.{task_name(t)}" in wanted] for cls, ts in tasks.items()
    }


def user_weights(auth_share: float, selected: Mapping[str, Sequence[Any]]) -> dict[str, int]:
    """Visitor and Member weights: `auth_share` between them, 0 for a class left without tasks.

    A filter that leaves only signed-in tasks with `--auth-share 0` is refused (no account would be logged in).
    """
    share = min(max(auth_share, 0.0), 1.0)
    weights = {"Visitor": max(0, round(100 * (1 - share))), "Member": max(0, round(100 * share))}
    weights = {cls: w if selected.get(cls) else 0 for cls, w in weights.items()}
    if not any(weights.values()):
        if selected.get("Member") and not selected.get("Visitor"):
            raise ValueError("the tasks chosen run signed in only (Member): --auth-share must be above 0")
        weights["Visitor"] = 1
    return weights


def iteration_shares(mix: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """`Class.task` -> its share of the mix's iterations (class weight x task weight within the class)."""
    total_class = sum(float(c["weight"]) for c in mix.values() if c["tasks"]) or 1.0
    shares: dict[str, float] = {}
    for cls, c in mix.items():
        task_total = sum(c["tasks"].values())
        for task, weight in c["tasks"].items():
            shares[f"{cls}.{task}"] = float(c["weight"]) / total_class * weight / task_total
    return shares


def contributions(shares: Mapping[str, float], costs: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """Each task's µs of CPU added to every request of the mix, from `costs`: task -> (µs per request alone,
    requests per iteration). Tasks without a cost are left out and named (their share of iterations too)."""
    measured = {task: p for task, p in shares.items() if task in costs}
    requests = sum(p * costs[task][1] for task, p in measured.items())
    rows: dict[str, dict[str, float]] = {}
    for task, p in measured.items():
        per_request, per_iteration = costs[task]
        us = p * per_iteration * per_request / requests if requests else 0.0
        rows[task] = {
            "iteration_share": p,
            "request_share": p * per_iteration / requests if requests else 0.0,
            "us_per_mix_request": us,
        }
    total = sum(r["us_per_mix_request"] for r in rows.values())
    for row in rows.values():
        row["cost_share"] = row["us_per_mix_request"] / total if total else 0.0
    missing = sorted(set(shares) - set(costs))
    return {
        "rows": rows,
        "us_per_mix_request": total,
        "requests_per_iteration": requests / sum(measured.values()) if measured else 0.0,
        "missing": missing,
        "missing_iteration_share": sum(shares[t] for t in missing),
    }
