"""Outbox, task and queue metrics, on the container's registry (potluck_outbox_*, potluck_task_*, potluck_queue_*).

The gauges are readings of shared state (the outbox table, the broker's lists) that every process takes: when a
server's processes share one /metrics (observability/multiprocess.py) the most recent reading of a live process
is the value (`livemostrecent`; such gauges may only be `set`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EventsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "potluck_outbox_backlog",
            "Events recorded and not yet delivered.",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.oldest_age = Gauge(
            "potluck_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event.",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.deliveries = Counter(
            "potluck_outbox_deliveries_total",
            "Delivery attempts by outcome (delivered, retried, dead).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "potluck_outbox_dead_letters",
            "Events that ran out of attempts (potluck events dead).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.task_duration = Histogram(
            "potluck_task_duration_seconds",
            "Background task run time (relay runs, view flushes, purges, handlers).",
            ["task"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "potluck_queue_depth",
            "Messages waiting in a Celery queue (its Redis list).",
            ["queue"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
