"""The chart's PrometheusRule: checked and unit-tested by promtool (Debian's prometheus package) on series
this test writes, each alert firing where it must and silent where it must not; and every metric the rules
read is one the operator exports."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ssvm_operator.metrics import Metrics
from tests.chart.helm import by_kind, render

NS = {"namespace": "cloud"}
# alert -> (input series, eval time, labels of the alerts that must fire there)
CASES = {
    "SSVMZoneWithoutRunningSSVM": ([
        ('ssvm_operator_ssvms{namespace="cloud",zone="z1",state="Running"}', "0x20"),
        ('ssvm_operator_zone_desired_ssvms{namespace="cloud",zone="z1"}', "1x20"),
        ('ssvm_operator_ssvms{namespace="cloud",zone="z2",state="Running"}', "1x20"),
        ('ssvm_operator_zone_desired_ssvms{namespace="cloud",zone="z2"}', "1x20"),
        ('ssvm_operator_ssvms{namespace="cloud",zone="z3",state="Running"}', "0x20"),   # disabled: wants none
        ('ssvm_operator_zone_desired_ssvms{namespace="cloud",zone="z3"}', "0x20"),
    ], "10m", [{**NS, "zone": "z1"}]),
    "SSVMNotReady": ([
        ('ssvm_operator_ssvm_ready{namespace="cloud",zone="z1",ssvm="z1-ssvm-1"}', "0x30"),
        ('ssvm_operator_ssvm_ready{namespace="cloud",zone="z1",ssvm="z1-ssvm-2"}', "1x30"),
        ('ssvm_operator_ssvm_ready{namespace="cloud",zone="z1",ssvm="z1-ssvm-3"}', "1x20 0x10"),   # not for long enough
    ], "25m", [{**NS, "zone": "z1", "ssvm": "z1-ssvm-1"}]),
    "SSVMImageStoreNotMounted": ([
        ('ssvm_operator_imagestore_mounted_ssvms{namespace="cloud",zone="z1",imagestore="s1"}', "0x30"),
        ('ssvm_operator_imagestore_mounted_ssvms{namespace="cloud",zone="z1",imagestore="s2"}', "2x30"),
    ], "20m", [{**NS, "zone": "z1", "imagestore": "s1"}]),
    "SSVMHealthChecksFailing": ([
        ('ssvm_operator_ssvm_healthy{namespace="cloud",zone="z1",ssvm="z1-ssvm-1"}', "0x30"),
        ('ssvm_operator_ssvm_healthy{namespace="cloud",zone="z1",ssvm="z1-ssvm-2"}', "1x30"),
    ], "15m", [{**NS, "zone": "z1", "ssvm": "z1-ssvm-1"}]),
    "SSVMHealthChecksNotRunning": ([
        ('ssvm_operator_ssvm_last_health_check_timestamp_seconds{namespace="cloud",zone="z1",ssvm="z1-ssvm-1"}', "0x60"),
        ('ssvm_operator_ssvm_last_health_check_timestamp_seconds{namespace="cloud",zone="z1",ssvm="z1-ssvm-2"}', "0+60x60"),
    ], "40m", [{**NS, "zone": "z1", "ssvm": "z1-ssvm-1"}]),
    "SSVMGuestActionsFailing": ([
        ('ssvm_operator_guest_action_failures_total{namespace="cloud",zone="z1",action="setup-store",reason="Unreachable"}', "0+1x30"),
        ('ssvm_operator_guest_action_failures_total{namespace="cloud",zone="z1",action="firewall",reason="Timeout"}', "0x30"),
    ], "20m", [{**NS, "zone": "z1", "action": "setup-store", "reason": "Unreachable"}]),
    "SSVMOperatorReconcileErrors": ([
        ('ssvm_operator_reconcile_errors_total{kind="Zone"}', "0+1x30"),
        ('ssvm_operator_reconcile_errors_total{kind="SecondaryStorageVM"}', "0x30"),
    ], "20m", [{"kind": "Zone"}]),
    "SSVMOperatorAbsent": ([('ssvm_operator_zone_ready{namespace="cloud",zone="z1"}', "1x30")], "15m", [{}]),
}


def _rules() -> dict:
    (rule,) = by_kind(render(sets=["metrics.prometheusRule.enabled=true"]), "PrometheusRule")
    return rule["spec"]


def _annotations(rule: dict, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus expands them for these labels (the templates only read $labels)."""
    expand = lambda text: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)
    return {k: expand(v) for k, v in rule["annotations"].items()}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: hack/setup.sh installs Debian's prometheus package"
    return path


def test_every_alert_has_a_case_and_the_rules_pass_promtool(promtool, tmp_path):
    spec = _rules()
    rules = {r["alert"]: r for g in spec["groups"] for r in g["rules"]}
    assert set(rules) == set(CASES)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    check = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    tests = []
    for alert, (series, at, firing) in CASES.items():
        exp = [{"exp_labels": {**rules[alert]["labels"], **labels}, "exp_annotations": _annotations(rules[alert], labels)}
               for labels in firing]
        tests.append({"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
                      "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": exp},
                                          {"eval_time": "1m", "alertname": alert, "exp_alerts": []}]})   # not yet
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}))
    run = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_broken_rule_fails_promtool(promtool, tmp_path):
    """The control: promtool does judge the cases (an alert that would never fire is caught)."""
    spec = _rules()
    spec["groups"][0]["rules"][1]["expr"] = "ssvm_operator_ssvm_ready == 2"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    series, at, firing = CASES["SSVMNotReady"]
    rule = spec["groups"][0]["rules"][1]
    exp = [{"exp_labels": {**rule["labels"], **labels}, "exp_annotations": _annotations(rule, labels)} for labels in firing]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
         "alert_rule_test": [{"eval_time": at, "alertname": "SSVMNotReady", "exp_alerts": exp}]}]}))
    run = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0


def test_every_metric_the_rules_read_is_exported():
    exported = {m.name for m in Metrics(CollectorRegistry()).registry.collect()}
    exported |= {f"{n}_total" for n in exported} | {f"{n}_info" for n in exported}
    names = set()
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            names |= set(re.findall(r"\bssvm_operator_[a-z_]+", rule["expr"]))
    assert names and names <= exported, names - exported
