"""The Grafana dashboard and the Prometheus rules name only metrics the code exposes.

KNOWN_METRICS is the list of exposed series names; a test builds every producer of metrics on one registry
and checks each listed name is really exposed, so a renamed metric fails here instead of leaving an empty
panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from potluck.cache.edge import EdgeMetrics
from potluck.cache.metrics import CacheMetrics
from potluck.config import DatabaseSettings
from potluck.db.engine import Database, create_engine
from potluck.events.metrics import EventsMetrics
from potluck.observability.db_pool import DbPoolCollector, database_pools
from potluck.observability.http_metrics import HttpMetrics
from potluck.observability.redis_info import RedisInfoPoller, RedisInfoSnapshot
from potluck.stats.service import EdgeTrafficMetrics
from potluck.user.audit import SecurityEvents

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "potluck-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

# Exposed by Patroni's REST API (GET /metrics on each node), not by Potluck: the alert
# patroni_no_synchronous_standby reads them (checked against a live node in tests/integration/test_patroni.py).
PATRONI_METRICS = frozenset({"patroni_primary", "patroni_sync_standby"})

KNOWN_METRICS = frozenset(
    {
        # potluck.observability.http_metrics
        "potluck_http_requests_total",
        "potluck_http_request_duration_seconds_bucket",
        "potluck_http_request_duration_seconds_sum",
        "potluck_http_request_duration_seconds_count",
        "potluck_http_requests_in_flight",
        # potluck.cache.edge
        "potluck_edge_purges_total",
        "potluck_edge_purge_debt_keys",
        "potluck_edge_leases_total",
        # potluck.stats.service.EdgeTrafficMetrics (the worker, from the edge and gateway logs)
        "potluck_edge_requests_total",
        "potluck_gateway_rejected_total",
        # potluck.cache.metrics
        "potluck_cache_hits_total",
        "potluck_cache_misses_total",
        "potluck_cache_fills_total",
        "potluck_cache_lease_waits_total",
        "potluck_cache_errors_total",
        "potluck_cache_bypasses_total",
        "potluck_cache_time_saved_seconds_total",
        "potluck_cache_early_refreshes_total",
        "potluck_cache_load_seconds_bucket",
        "potluck_cache_load_seconds_sum",
        "potluck_cache_load_seconds_count",
        "potluck_cache_invalidations_total",
        "potluck_cache_pending_invalidations",
        "potluck_cache_breaker_open",
        "potluck_cache_local_enabled",
        "potluck_cache_invalidation_ack_timeouts_total",
        # potluck.db (engine, replicas) and potluck.observability.db_pool
        "potluck_db_queries_total",
        "potluck_db_query_duration_seconds_bucket",
        "potluck_db_query_duration_seconds_sum",
        "potluck_db_query_duration_seconds_count",
        "potluck_db_replication_lag_seconds",
        "potluck_db_replication_lag_bytes",
        "potluck_db_replica_healthy",
        "potluck_db_up",
        "potluck_db_pool_checked_out",
        "potluck_db_pool_size",
        # potluck.events.metrics
        "potluck_outbox_backlog",
        "potluck_outbox_oldest_age_seconds",
        "potluck_outbox_deliveries_total",
        "potluck_outbox_dead_letters",
        "potluck_task_duration_seconds_bucket",
        "potluck_task_duration_seconds_sum",
        "potluck_task_duration_seconds_count",
        "potluck_queue_depth",
        # potluck.user.audit
        "potluck_security_events_total",
        "potluck_security_store_errors_total",
        "potluck_throttle_refusals_total",
        # potluck.observability.redis_info
        "potluck_redis_up",
        "potluck_redis_used_memory_bytes",
        "potluck_redis_maxmemory_bytes",
        "potluck_redis_evicted_keys_total",
    }
)

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and literals left out)."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range and subquery durations
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    expr = _GROUPING.sub(" ", expr)
    expr = _NUMBER.sub(" ", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group(0) not in _KEYWORDS:
            names.add(match.group(0))
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["query"]["query"]))
    return exprs


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job, le) (rate(a_bucket{job=~"x|y", le!="1"}[5m]))', {"a_bucket"}),
        ('histogram_quantile(0.95, sum by (route, le) (rate(b_bucket{job=~"$job"}[$__rate_interval])))', {"b_bucket"}),
        ("c:d:rate5m / on (job) group_left e_total > 0.01 or vector(0)", {"c:d:rate5m", "e_total"}),
        ("clamp_max(sum(f) / sum(g), 1) and bool 1e3", {"f", "g"}),
        ('label_replace(h, "dst", "$1", "src", "(.*)")', {"h"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboard_is_valid_grafana_json() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert board["uid"]
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "family"} <= variables
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"], panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_has_the_asked_for_panels() -> None:
    exprs = "\n".join(dashboard_exprs())
    for needed in (
        "potluck_http_requests_total",  # rate and errors
        "histogram_quantile(0.5, sum by (route, le)",
        "histogram_quantile(0.95, sum by (route, le)",
        "histogram_quantile(0.99, sum by (route, le)",
        'outcome="refused"',
        "potluck_cache_lease_waits_total",
        "potluck_cache_errors_total",
        "potluck_cache_breaker_open",
        "potluck_cache_time_saved_seconds_total",
        "sum by (role) (rate(potluck_db_queries_total",
        "histogram_quantile(0.95, sum by (role, le) (rate(potluck_db_query_duration_seconds_bucket",
        "max by (replica) (potluck_db_replication_lag_seconds)",
        "potluck_db_replica_healthy",
        "potluck_db_pool_checked_out",
        "potluck_outbox_backlog",
        "potluck_outbox_oldest_age_seconds",
        "potluck_task_duration_seconds_bucket",
        "potluck_redis_used_memory_bytes",
        "potluck_redis_evicted_keys_total",
    ):
        assert needed in exprs, needed


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_referenced_is_known(source: str) -> None:
    recorded = recorded_names()
    exprs = dashboard_exprs() if source == "dashboard" else [r.get("expr", "") for r in rules()]
    referenced = set().union(*(metric_names(e) for e in exprs))
    assert referenced, "no metric found: is the extraction broken?"
    unknown = referenced - KNOWN_METRICS - PATRONI_METRICS - recorded
    assert not unknown, f"{source} uses metrics nothing exposes: {sorted(unknown)}"


def test_recording_rule_names_follow_the_convention() -> None:
    for name in recorded_names():
        parts = name.split(":")  # level:metric:operations
        assert len(parts) == 3, name
        assert all(parts), name


def _exposed_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {family.name + s for family in registry.collect() for s in suffixes.get(family.type, [""])}


async def test_every_known_metric_is_exposed_by_the_code(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry)
    CacheMetrics(registry)
    EdgeMetrics(registry)
    EdgeTrafficMetrics(registry)
    EventsMetrics(registry)
    SecurityEvents(registry)
    settings = DatabaseSettings()
    database = Database(
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", settings),
        [("replica-1", create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", settings))],
        registry=registry,
        settings=settings,
    )
    DbPoolCollector(database_pools(database), registry)
    poller = RedisInfoPoller(object(), registry)  # type: ignore[arg-type]  # never polled here
    poller.snapshot = RedisInfoSnapshot(True, time.monotonic(), 1.0, 2.0, 3.0)
    try:
        missing = KNOWN_METRICS - _exposed_names(registry)
        assert not missing, f"listed as known but exposed by nothing: {sorted(missing)}"
    finally:
        await database.dispose()
