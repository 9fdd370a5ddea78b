"""The Celery application: broker on the non-evicting Redis, tasks bound to the per-process runtime.

The broker is `settings.redis.coord_url` (`noeviction`: a queued task must never be evicted), falling back to
`settings.redis.url` only when no coordination instance is configured; with `settings.redis.sentinels`, it is the
master Sentinel names `coord_master` (kombu's sentinel transport asks the sentinels again after a failover).
Results are not stored: tasks report through the database and metrics, so there is no result path to fail over.
"""

from __future__ import annotations

from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from celery.signals import (  # type: ignore[import-untyped]
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from potluck.config import Settings, get_settings
from potluck.observability.tracing import instrument_celery
from potluck.schedule import SCHEDULE, WARM_TASK, PeriodicJob, beat_schedule
from potluck.worker import runtime


class NoBrokerError(RuntimeError):
    """No Redis is configured: the embedded default runs the relay inside the API process instead."""


def broker_url(settings: Settings) -> str:
    target = settings.coord_redis
    if target is None:
        raise NoBrokerError(
            "no Redis configured (POTLUCK_REDIS__COORD_URL, POTLUCK_REDIS__URL or POTLUCK_REDIS__SENTINELS): "
            "without one, the API process runs the relay and the view flush itself"
        )
    if target.via_sentinel:
        # kombu's sentinel transport: every sentinel in one URL, separated by ';' (the master is named in the
        # transport options).
        return ";".join(f"sentinel://{host}:{port}/0" for host, port in target.sentinels)
    assert target.url is not None
    return target.url


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    # A lost task comes back after this long (the relay's own claim lease is far shorter).
    options: dict[str, Any] = {"visibility_timeout": 300}
    target = settings.coord_redis
    if target is not None and target.via_sentinel:
        options["master_name"] = target.master
        # The sentinels answer at once or are down: do not let one dead sentinel stall a reconnect.
        options["sentinel_kwargs"] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    return options


def _bind(app: Any, job: PeriodicJob, settings: Settings) -> None:
    def run() -> int:
        return runtime.current(lambda: settings).run(job.name, job.run)

    run.__name__ = job.name.replace(".", "_")
    run.__doc__ = job.run.__doc__
    # acks_late + reject_on_worker_lost: a task whose worker died is delivered again (they are idempotent).
    app.task(name=job.name, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(run)


def create_celery(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    url = broker_url(settings)
    app = Celery("potluck", broker=url, set_as_current=True)
    app.conf.update(
        task_default_queue=settings.worker.queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings),
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        timezone="UTC",
        enable_utc=True,
    )
    for job in SCHEDULE:
        _bind(app, job, settings)

    def init_worker(**_: Any) -> None:
        runtime.serve_pool_metrics(settings)  # main process, before the pool forks: one port for the whole pool

    def warm_on_start(**_: Any) -> None:
        # A worker that starts usually follows a deploy or an outage: warm the cache now rather than after the
        # first interval (each worker sends one; the job is idempotent and cheap when the cache is warm).
        app.send_task(WARM_TASK)

    def init_process(**_: Any) -> None:
        worker = runtime.current(lambda: settings)
        container = worker.container
        instrument_celery(settings, (container.database, container.events.database))  # nothing when tracing is off

    def shutdown_process(**_: Any) -> None:
        runtime.shutdown()

    # weak=False: the receivers are closures that would otherwise be collected at once.
    worker_init.connect(init_worker, weak=False)
    worker_ready.connect(warm_on_start, weak=False)
    worker_process_init.connect(init_process, weak=False)
    worker_process_shutdown.connect(shutdown_process, weak=False)
    return app
