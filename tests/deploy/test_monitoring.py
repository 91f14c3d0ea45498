"""kubernetes/monitoring/: every metric the Grafana dashboard and the alert rules query is served by a
live API (/metrics of the in-process app) or a live worker metrics server; the rules pass
`promtool check rules` and their unit tests (`promtool test rules`); the PodMonitors select the pods
and ports of the Deployments that carry the prometheus.io annotations."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.config import Settings
from app.platform.embedded_redis import free_port
from app.worker.metrics import start_metrics_server
from tests.support.paths import REPO
from tests.support.tenants import bearer, register

MONITORING = REPO / "kubernetes" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (inside {} or after by/without/on/ignoring/group_*), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):  # not the m of 5m
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def families(exposition: str) -> dict[str, str]:
    """Metric family name -> type, from the # TYPE lines (present even before a labelled metric has a child)."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE))


def is_served(name: str, served: dict[str, str]) -> bool:
    for family, kind in served.items():
        stem = family.removesuffix("_total") if kind == "counter" else family
        if any(name == stem + suffix for suffix in SUFFIXES.get(kind, ("",))):
            return True
    return False


@pytest.fixture
async def served(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    """The metric families of a live API (after some traffic) and of a live worker metrics server
    (the consumer's registry, with its Redis collector on the test's Redis servers)."""
    alice = await register(client, "alice")
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=bearer(alice))).status_code == 201
    assert (await client.get("/api/v1/kv/k", headers=bearer(alice))).status_code == 200
    assert (await client.get("/api/v1/kv/k", headers={"Authorization": "Bearer nope"})).status_code == 401
    api = await client.get("/metrics")
    assert api.status_code == 200
    port = free_port()
    assert start_metrics_server("127.0.0.1", port, settings)
    worker = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert worker.status_code == 200
    found = {**families(api.text), **families(worker.text)}
    assert "http_requests_total" in api.text and "kvstore_redis_up" in worker.text
    return found


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket{handler!="none",'
        'status=~"5.."}[5m]))) / on(instance) group_left(pod) max(kube_pod_info) and time() - x_total offset 5m > 1'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "kube_pod_info", "x_total"}


async def test_every_metric_of_the_dashboard_and_the_alert_rules_is_served(served: dict[str, str]) -> None:
    queries = dashboard_queries() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]
    used: set[str] = set()
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        missing = {name for name in names if not is_served(name, served)}
        assert not missing, f"{where}: {sorted(missing)} served by neither the API nor the worker"
        used |= names
    # What the dashboard must show (the list), by the metric that carries it.
    assert {
        "http_requests_total",  # request rate, error ratio
        "http_request_duration_seconds_bucket",  # p50 / p99 by route
        "kvstore_operations_total",  # KV operations
        "kvstore_watch_connections",  # watch connections
        "kvstore_background_tasks_total",  # worker task rate and failures
        "kvstore_background_task_duration_seconds_bucket",  # task duration
        "kvstore_background_task_last_success_timestamp_seconds",  # TTL sweep lag
        "kvstore_audit_outbox_tenants",  # audit outbox
        "kvstore_redis_memory_used_bytes",  # Redis memory
        "kvstore_redis_up",  # Redis down
    } <= used


def test_dashboard_panels_use_the_datasource_variable_and_have_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "kvstore"
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_alert_rules_cover_the_operator_cases_and_carry_severity_and_summary() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert {
        "KvstoreHighErrorRatio",
        "KvstoreHighLatencyP99",
        "KvstoreBackgroundTaskFailures",
        "KvstoreAuditOutboxNotDraining",
        "KvstoreTTLSweepLagging",
        "KvstoreRedisDown",
        "KvstoreRedisMemoryHigh",
    } <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert not (REPO / "prometheus").exists() or not any((REPO / "prometheus").iterdir())  # one copy only


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool not found: install Debian's prometheus package (apt-get install -y prometheus)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(f"SKIPPED, NOT CHECKED: {message}")


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tests = yaml.safe_load((MONITORING / "alerts-test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert len(tested) >= 4
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts-test.yml"], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alert_rule_tests_fail_when_an_alert_is_broken(tmp_path: Path) -> None:
    """promtool test rules really checks them: the same tests against a rule that never fires fail."""
    broken = ALERTS.read_text().replace("kvstore_redis_up == 0", "kvstore_redis_up == 2")
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(MONITORING / "alerts-test.yml", tmp_path / "alerts-test.yml")
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts-test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "KvstoreRedisDown" in result.stdout + result.stderr


def pods_by_deployment() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((REPO / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                found[doc["metadata"]["name"]] = doc["spec"]["template"]
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_pod_monitors_scrape_the_annotated_pods_on_their_ports() -> None:
    monitors = [doc for doc in yaml.safe_load_all((MONITORING / "podmonitors.yaml").read_text()) if doc]
    assert {doc["metadata"]["name"] for doc in monitors} == {"kvstore-api", "kvstore-worker", "kvstore-grpc"}
    scraped: set[str] = set()
    for monitor in monitors:
        # What the CRD requires (no schema offline for it: checked here by hand).
        assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
        assert monitor["metadata"]["namespace"] == "kvstore"
        assert monitor["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kvstore"
        spec = monitor["spec"]
        assert spec["selector"] and spec["podMetricsEndpoints"]
        for name, template in pods_by_deployment().items():
            if not selects(spec["selector"], template["metadata"]["labels"]):
                continue
            scraped.add(name)
            annotations = template["metadata"]["annotations"]
            ports = {port["name"]: port["containerPort"] for port in template["spec"]["containers"][0]["ports"]}
            for endpoint in spec["podMetricsEndpoints"]:
                assert str(ports[endpoint["port"]]) == annotations["prometheus.io/port"], name
                assert endpoint["path"] == annotations["prometheus.io/path"], name
    assert scraped == {"kvstore-api", "kvstore-grpc", "kvstore-huey", "kvstore-huey-periodic"}


def test_kustomization_ships_the_pod_monitors_and_the_dashboard() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "kvstore"
    for resource in kustomization["resources"]:
        assert (MONITORING / resource).is_file(), resource
    [generator] = kustomization["configMapGenerator"]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
    for entry in generator["files"]:
        assert (MONITORING / entry.split("=")[-1]).is_file(), entry
