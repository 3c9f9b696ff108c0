"""What operations watch (k8s/components/monitoring): the alerting rules pass ``promtool check rules``
and their unit tests (``promtool test rules``: each alert fires on what it is for, not on a healthy
series); every metric the rules and the dashboard read is one proact exports (or Kafka Exporter's
consumer lag); every alert has its runbook in docs/operations.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s/components/monitoring"
EXTERNAL = {"kafka_consumergroup_lag"}  # Strimzi's Kafka Exporter
PROMQL_WORDS = {"sum", "by", "rate", "or", "on", "max", "min", "clamp_min", "histogram_quantile", "le", "and"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool comes with Debian's prometheus package (deploy/local/system-deps.sh test)")
    return found


def rules() -> dict[str, Any]:
    rule: dict[str, Any] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    return rule["spec"]  # type: ignore[no-any-return]


def alerts() -> list[dict[str, Any]]:
    return [r for group in rules()["groups"] for r in group["rules"] if "alert" in r]


def test_the_rules_pass_promtools_check_and_unit_tests(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules()))
    shutil.copy(ROOT / "tests/unit/monitoring/alerts_test.yaml", tmp_path)
    checked = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # every alert is exercised by the unit tests
    exercised = set(re.findall(r"alertname: (\w+)", (tmp_path / "alerts_test.yaml").read_text()))
    assert {a["alert"] for a in alerts()} <= exercised


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|on|without)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_ranges))
    return {w for w in words if "_" in w and w not in PROMQL_WORDS}


def test_every_metric_read_is_one_proact_exports() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.metric_names"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    exported = set(out.stdout.split()) | EXTERNAL
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs = [a["expr"] for a in alerts()] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    read = set().union(*(_metric_names(e) for e in exprs))
    assert "proact_model_in_use" in read
    assert read - exported == set()


def test_every_alert_has_a_runbook() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", operations, re.M)
    }
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        path, anchor = url.split("#")
        assert (ROOT / path).is_file()
        assert anchor in headings, alert["alert"]
        assert alert["annotations"]["description"]
