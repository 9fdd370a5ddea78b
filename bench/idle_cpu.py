"""What an idle API process costs on its own loops (topology poll, invalidation bus, replica probes, the cache's
recover loop, ...): one extra `potluck serve` beside a running local cluster, with a cluster API process's own
environment plus overrides, no traffic; its CPU from /proc over a window after it settled. Linux only.

    uv run potluck cluster up --edges 0
    uv run python -m bench.idle_cpu base
    uv run python -m bench.idle_cpu no-topology POTLUCK_DATABASE__TOPOLOGY_INTERVAL_SECONDS=100000
    uv run python -m bench.idle_cpu no-lag-probes POTLUCK_DATABASE__LAG_CHECK_INTERVAL_SECONDS=100000
    uv run python -m bench.idle_cpu no-first-tier POTLUCK_CACHE__LOCAL_ENABLED=false      # no bus, no pings
    uv run python -m bench.idle_cpu old PYTHONPATH=/tmp/before/src                        # another commit's src

Alternate the variants (and run each several times): one run differs from the next by ~10% on a shared box.
Prints `<label> <ms of CPU per second>`."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cluster_api_environment() -> dict[str, str]:
    """The environment of a running cluster's API process (`potluck serve`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"serve" not in argv or not any(arg.endswith(b"potluck") for arg in argv):
                continue
            raw = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {key.decode(): value.decode() for key, value in pairs}
    raise SystemExit("no `potluck serve` process found: start the cluster first (potluck cluster up)")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, overrides: list[str], settle: float, window: float) -> float:
    env = cluster_api_environment()
    with tempfile.TemporaryDirectory() as metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # its own metrics files, not the cluster's processes'
        for override in overrides:
            key, _, value = override.partition("=")
            env[key] = value
        port = 40_000 + random.randrange(2_000)
        command = [str(Path(sys.executable).parent / "potluck"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--metrics-port", str(port + 3_000)]
        log = Path(tempfile.gettempdir()) / f"idle_cpu-{label}.log"
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            try:
                time.sleep(settle)
                if process.poll() is not None:
                    raise SystemExit(f"{label}: the process exited ({process.returncode}); see {log}")
                before = cpu_seconds(process.pid)
                time.sleep(window)
                after = cpu_seconds(process.pid)
            finally:
                process.terminate()
                process.wait(timeout=30)
    return (after - before) / window * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("label")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE added to the copied environment")
    parser.add_argument("--settle", type=float, default=25.0, help="seconds after start before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    args = parser.parse_args()
    print(f"{args.label} {measure(args.label, args.overrides, args.settle, args.window):.1f} ms/s", flush=True)


if __name__ == "__main__":
    main()
