"""One Container and one event loop per worker process; tasks submit coroutines to that loop.

The loop runs in its own thread for the life of the process, so the container's background work (replica
monitor, cache recovery, backlog gauges) keeps running between tasks, and tasks from any pool thread share
the connection pools. Built in `worker_process_init` (prefork children), or on first use (solo/threads pools).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from prometheus_client import start_http_server

from potluck.bootstrap import Container, bootstrap
from potluck.config import Settings
from potluck.observability import multiprocess

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


_pool_metrics: contextlib.ExitStack | None = None  # set in the main process once it serves the pool's metrics


def serve_pool_metrics(settings: Settings) -> Path | None:
    """In the worker's main process, before the pool starts: every pool process's metrics on one port.

    Turns on multiprocess mode (observability/multiprocess.py) for the processes forked after this, and serves
    their merged metrics on `worker.metrics_port` from this process, which outlives pool processes that die or are
    replaced. Nothing to do without a port. The pool processes serve nothing themselves: they write the files.
    """
    global _pool_metrics
    port = settings.worker.metrics_port
    if port is None or _pool_metrics is not None:
        return None
    stack = contextlib.ExitStack()
    # This process serves, the pool's processes write: always several, so a directory even if none is configured.
    processes = 1 + settings.worker.concurrency
    path = stack.enter_context(
        multiprocess.server_directory(settings.observability.multiprocess_dir, processes=processes)
    )
    assert path is not None  # several processes: never None
    start_http_server(port, registry=multiprocess.exposition_registry(path))
    owner = os.getpid()
    atexit.register(lambda: stack.close() if os.getpid() == owner else None)  # forked children exit otherwise
    _pool_metrics = stack
    logger.info("worker.metrics_serving", extra={"port": port, "multiprocess_dir": str(path)})
    return path


def shutdown() -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            _runtime.close()
            multiprocess.mark_dead()  # multiprocess mode: this pool process's live gauges leave the merge
        _runtime = None
