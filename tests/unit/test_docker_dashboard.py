"""The Grafana dashboard (docker/grafana/provisioning/dashboards/switchboard.json): valid JSON, every panel's PromQL
on metrics the code exports (or documented exporter metrics), RED per pipeline stage, lag per partition, and a panel
for every metric a pipeline worker exports."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit import monitoring_checks as mc
from tests.unit.compose_checks import ROOT, load_yaml

DASHBOARD = mc.DASHBOARD_DIR / "switchboard.json"
Dashboard = dict[str, Any]


@pytest.fixture(scope="module")
def dashboard() -> Dashboard:
    loaded: Dashboard = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def known() -> set[str]:
    return mc.known_metrics(mc.load_rules())


@pytest.fixture(scope="module")
def jobs() -> set[str]:
    return mc.scrape_jobs(load_yaml(mc.PROMETHEUS_FILE))


def expressions(dashboard: Dashboard) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets") or []]


def test_the_dashboard_passes(dashboard: Dashboard, known: set[str], jobs: set[str]) -> None:
    assert mc.dashboard_problems(dashboard, known, jobs) == []


def test_red_per_stage(dashboard: Dashboard) -> None:
    exprs = expressions(dashboard)
    assert any("sum by (stage)" in e and "rate(switchboard_stage_events_total" in e for e in exprs)
    assert any("sum by (stage)" in e and "rate(switchboard_stage_errors_total" in e for e in exprs)
    quantiles = {e.split(",")[0] for e in exprs if "switchboard_stage_duration_seconds_bucket" in e}
    assert quantiles == {"histogram_quantile(0.5", "histogram_quantile(0.9", "histogram_quantile(0.99"}
    assert all("by (stage, le)" in e for e in exprs if "switchboard_stage_duration_seconds_bucket" in e)


def test_lag_per_partition(dashboard: Dashboard) -> None:
    exprs = expressions(dashboard)
    assert any("switchboard_consumer_lag" in e and "partition" in e for e in exprs)
    assert any("kafka_consumergroup_lag{" in e and "partition" in e for e in exprs)


def test_every_metric_a_part_exports_has_a_panel(dashboard: Dashboard) -> None:
    """What the compose deployment scrapes from every part (all installed packages): each family is on the
    dashboard."""
    families = mc.registered_metrics(mc.source_files())
    shown = " ".join(expressions(dashboard))
    missing = [family for family, kind in families.items()
               if not any(series in shown for series in mc.series_names({family: kind}))]
    assert missing == []


Breakage = tuple[str, Any]


def _target(dashboard: Dashboard, title: str) -> dict[str, Any]:
    panel = next(panel for panel in dashboard["panels"] if panel["title"] == title)
    target: dict[str, Any] = panel["targets"][0]
    return target


BREAKAGES: list[Breakage] = [
    ("an invented metric", lambda d: _target(d, "Open circuits").update(
        {"expr": "max by (sender) (switchboard_breaker_open)"})),
    ("a label taken for a metric", lambda d: _target(d, "Errors per second by stage").update(
        {"expr": "sum by (stage, error) (rate(switchboard_stage_errors_total[5m]))) + error"})),
    ("another data source", lambda d: _target(d, "Brokers").update({"datasource": {"uid": "loki"}})),
    ("no query", lambda d: _target(d, "Brokers").update({"expr": ""})),
    ("a repeated id", lambda d: d["panels"][2].update({"id": d["panels"][1]["id"]})),
    ("overlapping panels", lambda d: d["panels"][2]["gridPos"].update({"x": 6})),
    ("off the grid", lambda d: d["panels"][1]["gridPos"].update({"w": 30})),
    ("a job nobody scrapes", lambda d: _target(d, "Brokers").update({"expr": 'kafka_brokers{job="kafka"}'})),
]


@pytest.mark.parametrize("breakage", [pytest.param(b, id=what) for what, b in BREAKAGES])
def test_a_broken_dashboard_is_reported(breakage: Any, dashboard: Dashboard, known: set[str],
                                        jobs: set[str]) -> None:
    broken = copy.deepcopy(dashboard)
    breakage(broken)
    assert mc.dashboard_problems(broken, known, jobs) != []


def test_the_dashboard_is_the_grafana_home(tmp_path: Path) -> None:
    compose = load_yaml(ROOT / "docker" / "compose.yaml")
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/etc/grafana/provisioning/dashboards/switchboard.json"
