"""The overload scenario's figures (issue 15): admitted latency, the 503s, the recovery.

bench/locustfile.py's `--scenario overload` runs a base rate, a step to the peak held for a while, a step back to
the base, and writes every request (seconds since start, status, milliseconds; status 0 = no answer) to
<csv prefix>_requests.csv. bench/loadtest.py calls `analyze` on it; by hand:

    uv run python -m bench.overload bench/results/loadtest-overload-<stamp>/

Admitted = answered below 500 and not 429 (a 429 is the gateway's per-address limit, counted apart).
Windows: `head` = the base rate before (its first 5 s left out), `peak` = the held peak, `tail` = after the step
back. A request belongs to the window in which it completed. Recovery: seconds from the end of the peak (when the
rate starts falling) to the start of the first one-second bucket after which every bucket is normal: no 503, no
other failure, admitted p99 within max(250 ms, 2 x the head's p99).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SHED = 503
THROTTLED = 429  # the gateway's per-address limit (nginx), not the API: counted apart
ADMITTED_P99_GOAL_MS = 250.0
RECOVERY_GOAL_S = 5.0
HEAD_SKIP_S = 5.0


def _pct(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))]


def _window(rows: Sequence[tuple[float, int, float]], begin: float, end: float) -> dict[str, Any]:
    inside = [r for r in rows if begin <= r[0] < end]
    admitted = [ms for _, status, ms in inside if status and status < 500 and status != THROTTLED]
    shed = [ms for _, status, ms in inside if status == SHED]
    throttled = sum(1 for r in inside if r[1] == THROTTLED)
    failed = [r for r in inside if not r[1] or (r[1] >= 500 and r[1] != SHED)]
    seconds = max(end - begin, 1e-9)
    return {
        "seconds": round(seconds, 1),
        "requests": len(inside),
        "rps": round(len(inside) / seconds, 1),
        "admitted": len(admitted),
        "admitted_rps": round(len(admitted) / seconds, 1),
        "admitted_p50_ms": _pct(admitted, 50),
        "admitted_p99_ms": _pct(admitted, 99),
        "admitted_max_ms": max(admitted, default=None),
        "shed": len(shed),
        "shed_share": round(len(shed) / max(len(inside), 1), 4),
        "shed_p50_ms": _pct(shed, 50),
        "shed_p99_ms": _pct(shed, 99),
        "throttled_429": throttled,
        "failed": len(failed),
    }


def read_requests(path: Path) -> list[tuple[float, int, float]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        t, status, ms = line.split(",")
        rows.append((float(t), int(status), float(ms)))
    return rows


def analyze(requests_csv: Path, plan: Mapping[str, Any]) -> dict[str, Any]:
    rows = read_requests(requests_csv)
    stages = [float(s["seconds"]) for s in plan["stages"]]  # head, step up, peak, step down, tail
    head_end = stages[0]
    peak_begin, peak_end = head_end + stages[1], head_end + stages[1] + stages[2]
    tail_begin, end = peak_end + stages[3], sum(stages)
    head = _window(rows, min(HEAD_SKIP_S, head_end / 2), head_end)
    normal_p99 = max(ADMITTED_P99_GOAL_MS, 2 * (head["admitted_p99_ms"] or 0.0))
    buckets = []
    second = peak_end
    while second < end:
        bucket = _window(rows, second, second + 1)
        bucket["normal"] = (
            bucket["shed"] == 0
            and bucket["failed"] == 0
            and (bucket["admitted_p99_ms"] is None or bucket["admitted_p99_ms"] <= normal_p99)
        )
        buckets.append({"from_peak_end_s": round(second - peak_end, 1), **bucket})
        second += 1
    recovery: float | None = None
    for i in range(len(buckets)):
        if all(b["normal"] for b in buckets[i:]):
            recovery = buckets[i]["from_peak_end_s"]
            break
    peak = _window(rows, peak_begin, peak_end)
    return {
        "plan": {"base_rate": plan["start_rate"], "peak_rate": plan["peak_rate"], "stages_s": stages},
        "head": head,
        "peak": peak,
        "tail": _window(rows, tail_begin, end),
        "normal_p99_ms": normal_p99,
        "recovery_s": recovery,
        "goals": {
            "admitted_p99_under_250ms": peak["admitted_p99_ms"] is not None
            and peak["admitted_p99_ms"] < ADMITTED_P99_GOAL_MS,
            "recovered_within_5s": recovery is not None and recovery <= RECOVERY_GOAL_S,
        },
        "after_peak_seconds": buckets,
    }


def markdown(result: Mapping[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}"

    lines = [
        "| window | req/s | admitted/s | admitted p50 ms | admitted p99 ms | 503 share | 503 p50 ms | 503 p99 ms "
        "| 429 (gateway) | other failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("head", "peak", "tail"):
        w = result[name]
        lines.append(
            f"| {name} | {w['rps']:,.1f} | {w['admitted_rps']:,.1f} | {ms(w['admitted_p50_ms'])} "
            f"| {ms(w['admitted_p99_ms'])} | {w['shed_share']:.1%} | {ms(w['shed_p50_ms'])} | {ms(w['shed_p99_ms'])} "
            f"| {w['throttled_429']} | {w['failed']} |"
        )
    recovery = result["recovery_s"]
    lines.append("")
    lines.append(
        f"Recovery (from the end of the peak to the first second after which every second is normal: no 503, no "
        f"failure, admitted p99 <= {result['normal_p99_ms']:,.0f} ms): "
        + ("not within the run" if recovery is None else f"{recovery:g} s")
        + f". Goals: {json.dumps(result['goals'])}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if len(args) != 1:
        print("usage: python -m bench.overload <loadtest report directory>", file=sys.stderr)
        return 2
    out_dir = Path(args[0])
    plan = json.loads((out_dir / "locust_arrivals.json").read_text())["plan"]
    result = analyze(out_dir / "locust_requests.csv", plan)
    (out_dir / "overload.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
