"""One Container and one event loop per worker process; tasks submit coroutines to that loop.

The loop runs in its own thread for the life of the process, so the container's background work (replica
monitor, cache recovery, backlog gauges) keeps running between tasks, and tasks from any pool thread share
the connection pools. Built in `worker_process_init` (prefork children), or on first use (solo/threads pools).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from prometheus_client import start_http_server

from potluck.bootstrap import Container, bootstrap
from potluck.config import Settings

logger = logging.getLogger("potluck.worker")

T = TypeVar("T")


def worker_settings(settings: Settings) -> Settings:
    """The API's settings, less the first cache tier: a worker serves no reads, and API writes must not wait
    for it to acknowledge invalidations."""
    cache = settings.cache.model_copy(update={"local_enabled": False})
    return settings.model_copy(update={"cache": cache})


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="potluck-worker-loop", daemon=True)
        self._thread.start()
        self.container: Container = self.submit(self._start(worker_settings(settings))).result(timeout=60)

    @staticmethod
    async def _start(settings: Settings) -> Container:
        container = bootstrap(settings)
        await container.start()
        return container

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop)

    def run(self, task: str, work: Callable[[Container], Awaitable[T]], timeout: float | None = None) -> T:
        """Run `work(container)` on this process's loop and wait for it; its time goes to potluck_task_duration."""
        started = time.perf_counter()
        try:
            return self.submit(work(self.container)).result(timeout)
        finally:
            elapsed = time.perf_counter() - started
            self.container.events.metrics.task_duration.labels(task).observe(elapsed)

    def close(self) -> None:
        try:
            self.submit(self.container.aclose()).result(timeout=30)
        except Exception:
            logger.exception("worker.shutdown_failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def current(settings_factory: Callable[[], Settings]) -> WorkerRuntime:
    """This process's runtime, built on first use (a forked child never reuses its parent's)."""
    global _runtime
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings_factory())
        return _runtime


def serve_metrics(runtime: WorkerRuntime, port: int) -> None:
    """Expose this process's registry (prefork: one port per pool process, base port + pool index)."""
    start_http_server(port, registry=runtime.container.registry)
    logger.info("worker.metrics_serving", extra={"port": port})


def shutdown() -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            _runtime.close()
        _runtime = None
