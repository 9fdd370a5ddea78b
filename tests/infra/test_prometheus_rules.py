"""deploy/prometheus: the rules load (`promtool check rules`), their unit tests pass (`promtool test rules`),
every alert is tested firing and not firing, and every PromQL expression of the Grafana dashboard parses.

promtool comes with Debian's `prometheus` package (scripts/install-deps.sh installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "potluck-dashboard.json"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found: install Debian's prometheus package (scripts/install-deps.sh)"
)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_names() -> list[str]:
    return [
        rule["alert"]
        for group in load(PROMETHEUS / "alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_rules_load() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_design_alerts_and_the_others_are_all_there() -> None:
    assert sorted(alert_names()) == sorted(
        [
            "high_error_rate",
            "high_latency",
            "cache_hit_rate_low",
            "replication_lag_high",
            "outbox_backlog_old",
            "edge_purge_debt",
            "redis_down",
            "database_down",
            "patroni_no_synchronous_standby",
            "failed_login_burst",
        ]
    )
    rules = {r["alert"]: r for g in load(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"] if "alert" in r}
    # The design's thresholds, durations and severities, exactly.
    assert (rules["high_error_rate"]["for"], rules["high_error_rate"]["labels"]["severity"]) == ("5m", "critical")
    assert "> 0.01" in rules["high_error_rate"]["expr"]
    assert (rules["high_latency"]["for"], rules["high_latency"]["labels"]["severity"]) == ("10m", "warning")
    assert 'quantile="0.95"' in rules["high_latency"]["expr"]
    assert "> 1" in rules["high_latency"]["expr"]
    assert (rules["cache_hit_rate_low"]["for"], rules["cache_hit_rate_low"]["labels"]["severity"]) == ("15m", "warning")
    assert "< 0.8" in rules["cache_hit_rate_low"]["expr"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load(PROMETHEUS / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown not firing (pending, or healthy)"


def test_a_wrong_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail (promtool exits 1): an error-rate threshold of 10% no longer fires on 5%."""
    rules = (PROMETHEUS / "alerts.yml").read_text()
    assert "job:potluck_http_errors:ratio_rate5m > 0.01" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace("ratio_rate5m > 0.01", "ratio_rate5m > 0.1"))
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path)
    done = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "FAILED" in done.stdout + done.stderr


def test_scrape_config_is_valid() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def _dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, loaded as a recording rule by promtool."""
    substitutions = {r"\$__rate_interval": "5m", r"\$\{?job\}?": ".*", r"\$\{?family\}?": ".*"}
    rules = []
    for index, expr in enumerate(_dashboard_exprs()):
        for pattern, value in substitutions.items():
            expr = re.sub(pattern, value, expr)
        assert "$" not in expr, f"a Grafana variable this test does not fill in: {expr}"
        rules.append({"record": f"dashboard:query_{index}:check", "expr": expr})
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
