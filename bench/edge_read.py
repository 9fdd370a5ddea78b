"""A cached anonymous recipe read through the edge vs the same read served by the API processes.

Needs a running `potluck cluster up` (with --edges 1 or more): reads <state dir>/cluster.json, picks a public
recipe, makes sure it is cached at the edge and in the API's first tier, then runs wrk for each target in turn:

* edge:    one edge node directly (a Varnish hit);
* gateway: nginx in front, then the edge: one client address, so the gateway's per-address limit (200 r/s +
           burst by default; POTLUCK_GATEWAY__* at `cluster up` to raise it) caps it, and 429s are not counted;
* api:     every API process directly (the first-tier fast path: the API's best case).

Each target gets as many `wrk -t1 -c32` instances as there are API processes, run at once and added.

Prints requests/s per target and the edge/API ratio. Everything shares the machine's cores (wrk included).

    uv run python -m bench.edge_read --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

_DONE = re.compile(r"(\d+) requests in ([\d.]+)s")
_FAILED = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk(url: str, duration: int, connections: int) -> float:
    """Successful (2xx/3xx) responses per second: a 429 from the gateway's limits does not count."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done, failed = _DONE.search(out), _FAILED.search(out)
    if done is None:
        raise RuntimeError(out)
    return (int(done.group(1)) - (int(failed.group(1)) if failed else 0)) / float(done.group(2))


def parallel(urls: list[str], duration: int, connections: int) -> float:
    with ThreadPoolExecutor(len(urls)) as pool:
        return sum(pool.map(lambda u: wrk(u, duration, connections), urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--state-dir", default=os.environ.get("POTLUCK_CLUSTER_DIR", ".cluster"))
    args = parser.parse_args()
    info = json.loads((Path(args.state_dir) / "cluster.json").read_text())
    edge = info["edge"]["nodes"][0]["url"]
    apis = [node["url"] for node in info["api"]]
    items = httpx.get(f"{apis[0]}/api/v1/recipes?limit=1", timeout=10).json()["items"]
    path = f"/api/v1/recipes/{items[0]['id']}"
    for _ in range(20):  # the edge's miss, then hits; each API process's first tier
        last = httpx.get(edge + path, timeout=10)
        for api in apis:
            httpx.get(api + path, timeout=10)
    assert last.headers.get("x-cache") == "HIT", last.headers
    results = {
        "edge": parallel([edge + path] * len(apis), args.duration, args.connections),
        "gateway": parallel([info["lb_url"] + path] * len(apis), args.duration, args.connections),
        "api": parallel([api + path for api in apis], args.duration, args.connections),
    }
    print(f"GET {path}, {len(apis)} x wrk -t1 -c{args.connections} -d{args.duration}s per target")
    for name, rps in results.items():
        print(f"  {name:8} {rps:10.0f} req/s")
    print(
        f"  edge / api = {results['edge'] / results['api']:.1f}x, gateway / api = "
        f"{results['gateway'] / results['api']:.1f}x"
    )


if __name__ == "__main__":
    main()
