"""The serving alerts as code: promtool checks and unit-tests them, and they query metrics the app exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mlops_assets.serving.metrics import ServingMetrics

RULES = Path(__file__).resolve().parents[2] / "mlops_assets" / "monitoring" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for rule in rules() if "alert" in rule}


def test_rules_and_config_are_valid():
    for args in (("check", "rules", "alerts.yml"), ("check", "config", "prometheus.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing():
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(alerts())


def test_rules_query_only_metrics_the_app_exports():
    metrics = ServingMetrics("m", 10.0)
    metrics.served("1", reloaded=False)
    metrics.polled("1")
    metrics.answered(200, "none", 0.01, 13, 1)
    exported = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    queried = {
        name for rule in rules() for name in re.findall(r"\bserving[:_][a-z_:0-9]+", rule["expr"])
    } - recorded
    assert queried and queried <= exported, queried - exported
