"""The password hasher's own pool: argon2id off the event loop, a bounded number at once, at a lower CPU priority."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from potluck.user.security import PasswordHasher


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(time_cost=1, memory_kib=64, parallelism=1, workers=2, nice=5)
    yield hasher
    hasher.close()


async def test_hashes_and_verifies_on_its_pool(hasher: PasswordHasher) -> None:
    stored = await hasher.hash_async("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert await hasher.verify_async(stored, "correct horse battery")
    assert not await hasher.verify_async(stored, "wrong horse battery")
    assert not await hasher.verify_async(None, "correct horse battery")  # no such user: still a full verification
    assert not await hasher.verify_async("not a hash", "x")


async def test_at_most_workers_hashes_run_at_once(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    original = hasher.hash

    def slow_hash(password: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # the pause at the racy point: every other call is queued or running meanwhile
        try:
            return original(password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hasher, "hash", slow_hash)
    hashes = await asyncio.gather(*(hasher.hash_async(f"password {i}") for i in range(6)))
    assert most == 2
    assert len(set(hashes)) == 6


@pytest.mark.skipif(sys.platform != "linux", reason="a per-thread nice value is Linux's")
async def test_its_threads_yield_the_cpu_to_request_handling(hasher: PasswordHasher) -> None:
    def own_nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop_nice = own_nice()
    pool_nice = await asyncio.get_running_loop().run_in_executor(hasher._pool, own_nice)
    assert pool_nice == min(19, loop_nice + 5)
    assert own_nice() == loop_nice  # the event loop's thread keeps its priority
