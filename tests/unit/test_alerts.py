"""The alert rules (docker/prometheus/alerts.yml) and Alertmanager (docker/alertmanager/alertmanager.yml), offline.

The rules: every alert in a tier (page, ticket, info) with a summary and a description, and every metric it names
one the code exports (found by reading the code), a documented exporter metric, or a recorded one. Alertmanager:
each tier reaches its receiver, inhibitions name alerts that exist, and one outage raises one page. Every check
also gets a broken copy. When Prometheus's promtool and amtool are on PATH, they check the files too and run the
rule unit tests in alerts.test.yml.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.unit import monitoring_checks as mc
from tests.unit.compose_checks import load_yaml

Rules = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rules() -> Rules:
    return mc.load_rules()


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(mc.PROMETHEUS_FILE)
    return config


@pytest.fixture(scope="module")
def alertmanager() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(mc.ALERTMANAGER_FILE)
    return config


def test_the_rules_pass(rules: Rules, prometheus: dict[str, Any]) -> None:
    assert mc.alert_problems(rules, prometheus) == []


def test_alertmanager_passes(alertmanager: dict[str, Any], rules: Rules) -> None:
    assert mc.alertmanager_problems(alertmanager, rules) == []


def test_every_tier_has_alerts(rules: Rules) -> None:
    assert {rule["labels"]["severity"] for rule in rules if "alert" in rule} == set(mc.SEVERITIES)


def test_the_alerts_the_issue_asks_for_exist(rules: Rules) -> None:
    tiers = {(rule["alert"], rule["labels"]["severity"]) for rule in rules if "alert" in rule}
    assert {("KafkaBrokerDown", "page"), ("SwitchboardStageLag", "ticket"), ("SwitchboardStageLag", "page"),
            ("SwitchboardStageErrors", "ticket"), ("SwitchboardDeadLetters", "ticket"),
            ("WebhookRejectsRising", "ticket"), ("WebhookReceiptsMissing", "ticket"),
            ("SwitchboardCircuitOpen", "ticket")} <= tiers


def test_the_metrics_are_found_in_the_code() -> None:
    """The scan finds what streams/observability.py registers, with the series names Prometheus sees."""
    exported = mc.exported_metrics()
    assert {"switchboard_stage_events_total", "switchboard_stage_errors_total", "switchboard_consumer_lag",
            "switchboard_stage_duration_seconds_bucket", "switchboard_stage_duration_seconds_count",
            "switchboard_dead_letters_total", "switchboard_circuit_open"} <= exported
    assert "switchboard_stage_events_total_total" not in exported
    assert "switchboard_readiness" not in exported  # a topic name in the code (__switchboard_readiness), no metric


def test_the_scan_reads_every_kind_of_family(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from prometheus_client import Counter, Gauge, Histogram, Summary\n"
                      "from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily\n"
                      "a = Counter('a_total', 'x')\nb = Gauge(name='b', documentation='x')\n"
                      "c = Histogram('c_seconds', 'x')\nd = CounterMetricFamily('d', 'x')\n"
                      "e = GaugeMetricFamily('e', 'x', labels=['t'])\nf = Summary('f', 'x')\nname = 'g'\n"
                      "g = Gauge(name, 'not a literal: not found')\n")
    assert mc.series_names(mc.registered_metrics([source])) == {
        "a_total", "a_created", "b", "c_seconds_bucket", "c_seconds_count", "c_seconds_sum", "c_seconds_created",
        "d_total", "d_created", "e", "f", "f_count", "f_sum", "f_created"}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (stage) (rate(switchboard_stage_events_total{job="x", stage=~"a|b"}[5m]))',
     {"switchboard_stage_events_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
    ('label_replace(kafka_consumergroup_members, "service", "$1", "consumergroup", "switchboard-(.*)") == 0',
     {"kafka_consumergroup_members"}),
    ("a / on (topic) group_left (x) b offset 5m > bool 1e3", {"a", "b"}),
    ("max without (instance) (up) unless on () absent(foo)", {"up", "foo"}),
    ('count(x{le="+Inf"}) or vector(0)', {"x"}),
    ('{__name__="by_name"}', {"by_name"}),
    ("switchboard:stage_lag:max > 1000", {"switchboard:stage_lag:max"}),
    ("sum(rate(a[5m:1m])) * 2 - -0x1F", {"a"}),
])
def test_metric_names_in_promql(expr: str, names: set[str]) -> None:
    assert mc.promql_metric_names(expr) == names


def _rule(rules: Rules, name: str, severity: str | None = None) -> dict[str, Any]:
    return next(rule for rule in rules if rule.get("alert") == name
                and (severity is None or rule["labels"]["severity"] == severity))


RuleBreakage = tuple[str, Any]

RULE_BREAKAGES: list[RuleBreakage] = [
    ("an invented metric", lambda rules: _rule(rules, "SwitchboardCircuitOpen", "ticket").update(
        {"expr": "switchboard_circuit_breaker_state == 2"})),
    ("a misspelt recording", lambda rules: _rule(rules, "SwitchboardStageLag", "page").update(
        {"expr": "switchboard:stage_lags:max > 1000"})),
    ("a job nobody scrapes", lambda rules: _rule(rules, "SwitchboardWorkerDown").update(
        {"expr": 'up{job="switchboard-workers"} == 0'})),
    ("a fourth tier", lambda rules: _rule(rules, "KafkaBrokerDown")["labels"].update({"severity": "critical"})),
    ("no severity", lambda rules: _rule(rules, "KafkaExporterDown")["labels"].pop("severity")),
    ("no summary", lambda rules: _rule(rules, "WebhookRejectsRising")["annotations"].pop("summary")),
    ("an empty description", lambda rules: _rule(rules, "SwitchboardDispatchBacklog")["annotations"].update(
        {"description": " "})),
    ("no service", lambda rules: _rule(rules, "SwitchboardStageSlow")["labels"].pop("service")),
    ("two pages of one alert", lambda rules: _rule(rules, "SwitchboardStageLag", "ticket")["labels"].update(
        {"severity": "page"})),
]


@pytest.mark.parametrize("breakage", [pytest.param(b, id=what) for what, b in RULE_BREAKAGES])
def test_broken_rules_are_reported(breakage: Any, rules: Rules, prometheus: dict[str, Any]) -> None:
    broken = copy.deepcopy(rules)
    breakage(broken)
    assert mc.alert_problems(broken, prometheus) != []


def test_a_missing_exporter_job_is_reported(rules: Rules, prometheus: dict[str, Any]) -> None:
    broken = copy.deepcopy(prometheus)
    broken["scrape_configs"] = [job for job in broken["scrape_configs"] if job["job_name"] != "kafka-exporter"]
    assert any("job 'kafka-exporter' is not scraped" in problem for problem in mc.alert_problems(rules, broken))


# ---- Alertmanager ----

def _inhibit(config: dict[str, Any], source: str) -> dict[str, Any]:
    return next(rule for rule in config["inhibit_rules"] if rule["source_matchers"] == [source])


AM_BREAKAGES: list[RuleBreakage] = [
    ("an inhibition naming no alert", lambda am: _inhibit(am, 'alertname="KafkaBrokerDown"').update(
        {"source_matchers": ['alertname="KafkaBrokersDown"']})),
    ("a target list with an unknown alert", lambda am: _inhibit(am, 'alertname="SwitchboardWorkerDown"').update(
        {"target_matchers": ['alertname=~"SwitchboardStageLag|SwitchboardLag"']})),
    ("a regex matching nothing", lambda am: _inhibit(am, 'alertname="SwitchboardDeadLetters"').update(
        {"target_matchers": ['alertname=~"DeadLetter.*"']})),
    ("an unknown tier", lambda am: _inhibit(am, 'severity="page"').update(
        {"source_matchers": ['severity="critical"']})),
    ("an equal label no alert carries", lambda am: _inhibit(am, 'alertname="SwitchboardWorkerDown"').update(
        {"equal": ["service", "pod"]})),
    ("a malformed matcher", lambda am: _inhibit(am, 'alertname="SwitchboardCircuitOpen"').update(
        {"target_matchers": ["alertname: SwitchboardDispatchBacklog"]})),
    ("the old match form", lambda am: _inhibit(am, 'alertname="MirrorMakerHeartbeatsStopped"').pop("source_matchers")),
    ("an undefined receiver", lambda am: am["route"]["routes"][1].update({"receiver": "pager"})),
    ("a tier without its route", lambda am: am["route"]["routes"].pop(3)),
    ("a literal key", lambda am: am["receivers"][0].update(
        {"pagerduty_configs": [{"routing_key": "0123456789abcdef"}]})),
    ("a literal webhook URL", lambda am: am["receivers"][3].update(
        {"webhook_configs": [{"url": "https://hooks.example/abc"}]})),
]


@pytest.mark.parametrize("breakage", [pytest.param(b, id=what) for what, b in AM_BREAKAGES])
def test_a_broken_alertmanager_is_reported(breakage: Any, alertmanager: dict[str, Any], rules: Rules) -> None:
    broken = copy.deepcopy(alertmanager)
    breakage(broken)
    assert mc.alertmanager_problems(broken, rules) != []


def test_secrets_may_come_from_files(alertmanager: dict[str, Any], rules: Rules) -> None:
    config = copy.deepcopy(alertmanager)
    config["receivers"][0]["pagerduty_configs"] = [{"routing_key_file": "/run/secrets/pagerduty_routing_key"}]
    config["receivers"][3]["webhook_configs"] = [{"url_file": "/run/secrets/deadmanswitch_url"}]
    assert mc.alertmanager_problems(config, rules) == []


def test_each_tier_and_the_watchdog_reach_their_receiver(alertmanager: dict[str, Any]) -> None:
    route = alertmanager["route"]
    assert mc.route_receiver(route, {"alertname": "KafkaBrokerDown", "severity": "page"}) == "page"
    assert mc.route_receiver(route, {"alertname": "SwitchboardStageLag", "severity": "ticket"}) == "ticket"
    assert mc.route_receiver(route, {"alertname": "SwitchboardStageSlow", "severity": "info"}) == "info"
    assert mc.route_receiver(route, {"alertname": "Watchdog", "severity": "info"}) == "watchdog"


def _firing(rules: Rules, name: str, severity: str, **labels: str) -> dict[str, str]:
    rule = _rule(rules, name, severity)
    return {"alertname": name, **{k: str(v) for k, v in rule["labels"].items()}, **labels}


def _pages_left(firing: list[dict[str, str]], alertmanager: dict[str, Any]) -> list[str]:
    muted = mc.inhibited(firing, alertmanager["inhibit_rules"])
    return sorted(alert["alertname"] for alert in firing if alert not in muted and alert["severity"] == "page")


def test_a_broker_outage_raises_one_page(rules: Rules, alertmanager: dict[str, Any]) -> None:
    """A broker down long enough for everything downstream to page: only KafkaBrokerDown is left to page."""
    firing = [
        _firing(rules, "KafkaBrokerDown", "page"),
        _firing(rules, "KafkaPartitionsUnderMinIsr", "page", topic="sb.commands"),
        _firing(rules, "KafkaUnderReplicatedPartitions", "ticket"),
        _firing(rules, "SwitchboardStageLag", "ticket", stage="writer", topic="sb.commands"),
        _firing(rules, "SwitchboardStageLag", "page", stage="writer", topic="sb.commands"),
        _firing(rules, "SwitchboardStageErrors", "page", stage="dispatch"),
        _firing(rules, "SwitchboardConsumerGroupLag", "page", consumergroup="switchboard-normaliser",
                service="normaliser"),
    ]
    assert _pages_left(firing, alertmanager) == ["KafkaBrokerDown"]
    assert [alert for alert in firing if alert not in mc.inhibited(firing, alertmanager["inhibit_rules"])] == \
        [firing[0]]


def test_an_unreachable_cluster_raises_one_page(rules: Rules, alertmanager: dict[str, Any]) -> None:
    firing = [
        _firing(rules, "KafkaClusterUnreachable", "page"),
        _firing(rules, "KafkaBrokerDown", "page"),
        _firing(rules, "SwitchboardPipelineDown", "page"),
        _firing(rules, "SwitchboardConsumerGroupEmpty", "page", consumergroup="switchboard-callbacks",
                service="callbacks"),
        _firing(rules, "SwitchboardStageLag", "page", stage="writer", topic="sb.commands"),
    ]
    assert _pages_left(firing, alertmanager) == ["KafkaClusterUnreachable"]


def test_a_worker_down_mutes_its_lag_but_not_other_services(rules: Rules, alertmanager: dict[str, Any]) -> None:
    worker_down = _firing(rules, "SwitchboardWorkerDown", "ticket", instance="pipeline-2:8081")
    pipeline_lag = _firing(rules, "SwitchboardStageLag", "ticket", stage="writer", topic="sb.commands")
    pipeline_group = _firing(rules, "SwitchboardConsumerGroupLag", "ticket", consumergroup="switchboard-pipeline",
                             service="pipeline")
    normaliser_lag = _firing(rules, "SwitchboardConsumerGroupLag", "ticket", consumergroup="switchboard-normaliser",
                             service="normaliser")
    muted = mc.inhibited([worker_down, pipeline_lag, pipeline_group, normaliser_lag], alertmanager["inhibit_rules"])
    assert muted == [pipeline_lag, pipeline_group]


def test_a_page_mutes_the_ticket_of_the_same_alert_only(rules: Rules, alertmanager: dict[str, Any]) -> None:
    page = _firing(rules, "SwitchboardStageLag", "page", stage="writer", topic="sb.commands")
    ticket = _firing(rules, "SwitchboardStageLag", "ticket", stage="writer", topic="sb.commands")
    other_stage = _firing(rules, "SwitchboardStageLag", "ticket", stage="dispatch", topic="sb.dispatch")
    assert mc.inhibited([page, ticket, other_stage], alertmanager["inhibit_rules"]) == [ticket]


def test_an_empty_group_pages_once(rules: Rules, alertmanager: dict[str, Any]) -> None:
    empty = _firing(rules, "SwitchboardConsumerGroupEmpty", "page", consumergroup="switchboard-normaliser",
                    service="normaliser")
    lag = _firing(rules, "SwitchboardConsumerGroupLag", "page", consumergroup="switchboard-normaliser",
                  service="normaliser")
    assert _pages_left([empty, lag], alertmanager) == ["SwitchboardConsumerGroupEmpty"]


def test_matchers_parse() -> None:
    assert mc.parse_matcher('alertname=~"A|B"') == ("alertname", "=~", "A|B")
    assert mc.parse_matcher(' severity != "info" ') == ("severity", "!=", "info")
    with pytest.raises(ValueError, match="not a matcher"):
        mc.parse_matcher("severity=page")
