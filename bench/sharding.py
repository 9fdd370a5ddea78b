"""How many keys move when the shard count grows by one: jump consistent hash against modulo.

Keys: `--keys` fresh UUIDv7 ids (kit/ids.py, what user and recipe ids are), each through blake2b-64
(kit/shard_key.py). For each N: the share of keys whose shard differs between N and N+1 shards, for
jump_consistent_hash and for `% N` on the same 64-bit keys; the ideal is 1/(N+1). Also the cost of one
shard_for() call, the baseline being one blake2b-64 alone in the same run.

    uv run python -m bench.sharding --keys 1000000
"""

from __future__ import annotations

import argparse
import json
import time

from potluck.kit.ids import new_id
from potluck.kit.shard_key import jump_consistent_hash, shard_for, stable_key


def main(keys: int) -> dict[str, object]:
    ids = [new_id() for _ in range(keys)]
    hashed = [stable_key(i) for i in ids]
    rows = []
    for n in (2, 4, 8, 16, 32, 64):
        jump = sum(jump_consistent_hash(k, n) != jump_consistent_hash(k, n + 1) for k in hashed) / keys
        modulo = sum(k % n != k % (n + 1) for k in hashed) / keys
        rows.append({"n": n, "ideal": 1 / (n + 1), "jump_moved": jump, "modulo_moved": modulo})
    sample = ids[:100_000]
    started = time.perf_counter()
    for i in sample:
        stable_key(i)
    blake = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    for i in sample:
        shard_for(i, 16)
    full = (time.perf_counter() - started) / len(sample)
    return {
        "keys": keys,
        "remap": rows,
        "microseconds_per_call": {"blake2b_only": blake * 1e6, "shard_for_16": full * 1e6, "ratio": full / blake},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    print(json.dumps(main(parser.parse_args().keys), indent=2))
