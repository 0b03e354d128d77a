"""The chart's Grafana dashboard: a ConfigMap with the sidecar's label, and every query reads only metrics
the operator exports."""
from __future__ import annotations

import json
import re

import kubernetes_validate
from prometheus_client import CollectorRegistry

from ssvm_operator.metrics import Metrics
from tests.chart.helm import by_kind, render


def _dashboard() -> tuple[dict, dict]:
    (cm,) = [d for d in by_kind(render(sets=["metrics.grafanaDashboard.enabled=true"]), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    return cm, json.loads(cm["data"]["ssvm-operator.json"])


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_loads():
    cm, dashboard = _dashboard()
    kubernetes_validate.validate(cm, "1.30", strict=True)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["uid"] == "ssvm-operator" and dashboard["panels"]
    assert render() and not [d for d in by_kind(render(), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")], "off by default"


def test_every_query_names_a_metric_the_operator_exports():
    _, dashboard = _dashboard()
    exported = {m.name for m in Metrics(CollectorRegistry()).registry.collect()}
    exported |= {f"{n}{s}" for n in exported for s in ("_total", "_bucket", "_info")}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    named = set()
    for expr in exprs:
        names = set(re.findall(r"\bssvm_operator_[a-z_]+", expr))
        assert names, f"a query that reads none of the operator's metrics: {expr}"
        named |= names
    assert named <= exported, named - exported
    # what a platform team looks at: zones, SSVM states, stores, health, actions, reaction times
    for metric in ("ssvm_operator_zone_ready", "ssvm_operator_ssvms", "ssvm_operator_imagestore_mounted_ssvms",
                   "ssvm_operator_ssvm_last_health_check_timestamp_seconds", "ssvm_operator_guest_action_failures_total",
                   "ssvm_operator_reconcile_duration_seconds_bucket"):
        assert metric in named, metric
