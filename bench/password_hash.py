"""What one password verification costs in CPU and wall time, for argon2id with Potluck's default parameters
(`auth.argon2_*`: RFC 9106's second recommended option, t=3, 64 MiB, p=4) and with OWASP's minimum for argon2id
(t=2, 19 MiB, p=1), alternating in one run:

    uv run python -m bench.password_hash
    uv run python -m bench.password_hash --rounds 5 --verifications 20

CPU is the process's (argon2's lane threads included). A login costs one verification plus its request.
"""

from __future__ import annotations

import argparse
import time

import argon2

from potluck.config import AuthSettings

OWASP_MINIMUM = (2, 19_456, 1)


def _verify_cost(time_cost: int, memory_kib: int, parallelism: int, verifications: int) -> tuple[float, float]:
    """(ms of CPU, ms of wall time) per verification."""
    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
    )
    hashed = hasher.hash("potluck-demo")
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(verifications):
        hasher.verify(hashed, "potluck-demo")
    return (time.process_time() - cpu) / verifications * 1e3, (time.perf_counter() - wall) / verifications * 1e3


def main(rounds: int, verifications: int) -> None:
    auth = AuthSettings()
    configurations = {
        "default": (auth.argon2_time_cost, auth.argon2_memory_kib, auth.argon2_parallelism),
        "OWASP minimum": OWASP_MINIMUM,
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, parameters in configurations.items():
            cpu, wall = _verify_cost(*parameters, verifications)
            previous = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(cpu, previous[0]), min(wall, previous[1]))
    print(f"per verification, best of {rounds} rounds x {verifications}")
    for name, (t, m, p) in configurations.items():
        cpu, wall = best[name]
        print(f"{name:14s} t={t} m={m} KiB p={p}: {cpu:6.1f} ms CPU {wall:6.1f} ms wall")
    print(f"OWASP minimum / default, CPU: {best['OWASP minimum'][0] / best['default'][0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--verifications", type=int, default=10)
    args = parser.parse_args()
    main(args.rounds, args.verifications)
