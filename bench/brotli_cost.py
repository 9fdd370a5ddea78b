"""Brotli for JSON: CPU per byte saved at the API (Python `brotli`) vs at the gateway (nginx's brotli filter).

Payloads are API-shaped JSON built from the seed vocabulary: a recipe document (~3-4 KB) and a list page of 20
summaries (~10 KB). Each encoder's cost is CPU time per response and per byte it saves against identity:

* api:     `brotli.compress` (quality 4, 5, 6) and zlib gzip level 9 (what starlette's GZipMiddleware does),
           in this process, `time.process_time` over many repeats;
* gateway: a real nginx (`libnginx-mod-http-brotli-filter`, one worker) serving the same bodies with
           `brotli_comp_level` 4/5/6 and `gzip_comp_level` 5 (deploy/nginx), driven by wrk with and without
           `Accept-Encoding`; the worker's utime+stime from /proc, per request, minus the identity run's.

Prints a table; ratios are to gzip at the API (the baseline, measured in the same run). Where compression happens
matters as much as its unit cost: behind the edge, an API-side encoding is computed once per fill and stored
(Vary: Accept-Encoding), a gateway-side one on every response, hits included (docs/benchmarks.md).

    uv run python -m bench.brotli_cost --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brotli
import httpx

from potluck.seed.compose import compose_recipe
from potluck.seed.vocabulary import vocabulary
from potluck_ops.ports import free_port

MODULE = Path("/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so")
_DONE = re.compile(r"(\d+) requests in ([\d.]+)s")
TICKS = os.sysconf("SC_CLK_TCK")


def _author(rng: random.Random) -> dict[str, Any]:
    v = vocabulary()
    first, last = rng.choice(v.first_names), rng.choice(v.last_names)
    return {"id": str(uuid.UUID(int=rng.getrandbits(128))), "username": f"{first}{last}".lower(), "display_name": None}


def recipe_document(rng: random.Random) -> dict[str, Any]:
    """A recipe shaped like GET /recipes/{id} (ids, author block, named ingredient lines, steps, tags)."""
    v = vocabulary()
    c = compose_recipe(rng, rng.choice(v.cuisines), [rng.choice(v.tags)])
    rid = str(uuid.UUID(int=rng.getrandbits(128)))
    return {
        "id": rid,
        "title": c.title,
        "description": c.description,
        "author": _author(rng),
        "servings": c.servings,
        "prep_minutes": c.prep_minutes,
        "cook_minutes": c.cook_minutes,
        "difficulty": c.difficulty,
        "is_public": True,
        "image_url": f"https://media.example.com/recipes/{rid}/large.webp",
        "ingredients": [
            {"position": i, "name": v.ingredients[line[0]].name, "quantity": line[1], "unit": line[2], "note": line[3]}
            for i, line in enumerate(c.lines, 1)
        ],
        "steps": [{"position": i, "text": text} for i, text in enumerate(c.steps, 1)],
        "tags": [v.tags[t] for t in c.tags if t < len(v.tags)],
        "rating": {"average": round(rng.uniform(3, 5), 2), "count": rng.randrange(200)},
        "favorites": rng.randrange(500),
        "created_at": "2026-11-02T10:11:12.123456Z",
        "updated_at": "2026-11-30T18:19:20.654321Z",
        "version": rng.randrange(1, 9),
    }


def list_page(rng: random.Random, size: int = 20) -> dict[str, Any]:
    keep = ("id", "title", "description", "author", "image_url", "prep_minutes", "cook_minutes", "rating", "tags")
    items = [{k: doc[k] for k in keep} for doc in (recipe_document(rng) for _ in range(size))]
    return {"items": items, "next_cursor": "eyJrIjpbIjIwMjYtMTEtMzAiLCIxMjMiXX0", "limit": size}


def _cpu_per_call(work: Callable[[], bytes], min_seconds: float) -> float:
    calls, started = 0, time.process_time()
    while True:
        work()
        calls += 1
        spent = time.process_time() - started
        if spent >= min_seconds:
            return spent / calls


def api_side(bodies: dict[str, bytes], min_seconds: float) -> list[dict[str, Any]]:
    rows = []
    encoders: dict[str, Callable[[bytes], bytes]] = {"gzip-9": lambda b: zlib.compress(b, 9, 16 + zlib.MAX_WBITS)}
    for quality in (4, 5, 6):
        encoders[f"br-{quality}"] = lambda b, q=quality: brotli.compress(b, mode=brotli.MODE_TEXT, quality=q)
    for name, body in bodies.items():
        for encoder, encode in encoders.items():
            size = len(encode(body))
            cpu = _cpu_per_call(lambda encode=encode, body=body: encode(body), min_seconds)
            rows.append({"where": "api", "body": name, "encoder": encoder, "bytes": size, "cpu": cpu})
    return rows


NGINX_CONF = """
load_module {module};
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    gzip on; gzip_types application/json; gzip_min_length 1024; gzip_comp_level 5;
    brotli on; brotli_types application/json; brotli_min_length 1024; brotli_comp_level {level};
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {root}/www; types {{ }} default_type application/json; }}
    }}
}}
"""


def _worker_cpu(master: int) -> float:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


def _wrk(url: str, duration: int, encoding: str) -> int:
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{duration}s", "-H", f"Accept-Encoding: {encoding}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done = _DONE.search(out)
    if done is None:
        raise RuntimeError(out)
    return int(done.group(1))


def gateway_side(bodies: dict[str, bytes], duration: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="brotli-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's worker runs as another user when the master is root
        (root / "www").mkdir()
        (root / "tmp").mkdir()
        for name, body in bodies.items():
            (root / "www" / f"{name}.json").write_bytes(body)
        for level in (4, 5, 6):
            port = free_port()
            conf = root / "nginx.conf"
            conf.write_text(NGINX_CONF.format(module=MODULE, root=root, port=port, level=level))
            master = subprocess.Popen(
                ["nginx", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf), "-g", "daemon off;"]
            )
            try:
                _wait_up(port)
                for name in bodies:
                    url = f"http://127.0.0.1:{port}/{name}.json"
                    per_request = {}
                    for encoding in ("identity", "gzip", "br"):
                        if encoding == "gzip" and level != 5:
                            continue
                        before = _worker_cpu(master.pid)
                        done = _wrk(url, duration, encoding)
                        per_request[encoding] = (_worker_cpu(master.pid) - before) / done
                        response = httpx.get(url, headers={"Accept-Encoding": encoding})
                        response.raise_for_status()
                        size = response.num_bytes_downloaded
                        if encoding != "identity":
                            encoder = "gzip-5" if encoding == "gzip" else f"br-{level}"
                            cpu = per_request[encoding] - per_request["identity"]
                            rows.append(
                                {"where": "gateway", "body": name, "encoder": encoder, "bytes": size, "cpu": cpu}
                            )
            finally:
                master.send_signal(signal.SIGQUIT)
                master.wait(10)
    return rows


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/")
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per gateway measurement")
    parser.add_argument("--cpu-seconds", type=float, default=1.0, help="CPU seconds per API-side measurement")
    args = parser.parse_args()
    rng = random.Random(14)
    bodies = {
        "recipe": json.dumps(recipe_document(rng), separators=(",", ":")).encode(),
        "list20": json.dumps(list_page(rng), separators=(",", ":")).encode(),
    }
    rows = api_side(bodies, args.cpu_seconds)
    if MODULE.exists():
        rows += gateway_side(bodies, args.duration)
    else:
        print(f"{MODULE} missing (apt-get install libnginx-mod-http-brotli-filter): gateway side skipped")
    baseline = {r["body"]: r for r in rows if r["where"] == "api" and r["encoder"] == "gzip-9"}
    heading = ("where", "body", "encoder", "bytes", "saved", "cpu us", "ns/B saved", "vs api gzip-9")
    print("{:8} {:7} {:7} {:>7} {:>7} {:>8} {:>10} {:>13}".format(*heading))
    for r in rows:
        identity = len(bodies[r["body"]])
        saved = identity - r["bytes"]
        per_byte = r["cpu"] / saved * 1e9
        base = baseline[r["body"]]
        base_per_byte = base["cpu"] / (identity - base["bytes"]) * 1e9
        print(
            f"{r['where']:8} {r['body']:7} {r['encoder']:7} {r['bytes']:7d} {saved:7d} {r['cpu'] * 1e6:8.1f}"
            f" {per_byte:10.2f} {per_byte / base_per_byte:12.2f}x"
        )
    print({name: len(body) for name, body in bodies.items()}, "identity bytes")


if __name__ == "__main__":
    main()
