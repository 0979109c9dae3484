"""Offline checks of the monitoring and DR files under docker/: which metrics the code exports, which metric names a
PromQL expression uses, Java properties (MirrorMaker 2), and the topic names the code uses.

Used by tests/unit/test_alerts.py, test_docker_dashboard.py, test_docker_mirrormaker.py and compose_checks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
ALERTS_FILE = DOCKER_DIR / "prometheus" / "alerts.yml"
ALERTS_TEST_FILE = DOCKER_DIR / "prometheus" / "alerts.test.yml"
PROMETHEUS_FILE = DOCKER_DIR / "prometheus" / "prometheus.yml"
ALERTMANAGER_FILE = DOCKER_DIR / "alertmanager" / "alertmanager.yml"
DASHBOARD_DIR = DOCKER_DIR / "grafana" / "provisioning" / "dashboards"
MM2_FILE = DOCKER_DIR / "mirrormaker" / "mm2.properties"

SEVERITIES = ("page", "ticket", "info")

# Metrics that come from elsewhere than Switchboard's code, with where they come from. Anything else an alert or a
# panel names must be exported by the code (exported_metrics) or recorded by a rule in alerts.yml.
EXTERNAL_METRICS = {
    "up": "Prometheus, per scrape target",
    "ALERTS": "Prometheus, per firing or pending alert",
    "ALERTS_FOR_STATE": "Prometheus, per alert",
    # danielqsj/kafka_exporter (service kafka-exporter, jobs kafka-exporter and kafka-exporter-dr)
    "kafka_brokers": "kafka_exporter",
    "kafka_broker_info": "kafka_exporter",
    "kafka_topic_partitions": "kafka_exporter",
    "kafka_topic_partition_current_offset": "kafka_exporter",
    "kafka_topic_partition_oldest_offset": "kafka_exporter",
    "kafka_topic_partition_in_sync_replica": "kafka_exporter",
    "kafka_topic_partition_leader": "kafka_exporter",
    "kafka_topic_partition_leader_is_preferred": "kafka_exporter",
    "kafka_topic_partition_replicas": "kafka_exporter",
    "kafka_topic_partition_under_replicated_partition": "kafka_exporter",
    "kafka_consumergroup_current_offset": "kafka_exporter",
    "kafka_consumergroup_current_offset_sum": "kafka_exporter",
    "kafka_consumergroup_lag": "kafka_exporter",
    "kafka_consumergroup_lag_sum": "kafka_exporter",
    "kafka_consumergroup_members": "kafka_exporter",
}
# The scrape job each external metric needs (a metric whose job is not scraped would make its alert silent).
EXTERNAL_JOBS = {"kafka_": {"kafka-exporter"}}

# ---- what the code exports ----

_SERIES_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "CounterMetricFamily": ("_total", "_created"),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "HistogramMetricFamily": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
    "SummaryMetricFamily": ("", "_count", "_sum"),
    "Info": ("_info",),
    "InfoMetricFamily": ("_info",),
    "Enum": ("",),
    "StateSetMetricFamily": ("",),
}


def source_files(root: Path = ROOT) -> Iterator[Path]:
    """The Python files of the installed packages (pyproject's setuptools include list)."""
    from tests.unit.compose_checks import project_packages

    for package in project_packages():
        yield from sorted((root / package).rglob("*.py"))


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def registered_metrics(files: Iterable[Path]) -> dict[str, str]:
    """{family name: its prometheus_client type} for every metric family the code constructs with a literal name."""
    found = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or _call_name(node) not in _SERIES_SUFFIXES:
                continue
            name = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "name"), None)
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found[name.value] = _call_name(node)
    return found


def series_names(families: dict[str, str]) -> set[str]:
    """The series names Prometheus sees for these families (a Counter "x" is exposed as x_total, a Histogram as
    x_bucket, x_count, x_sum...)."""
    names = set()
    for family, kind in families.items():
        base = family.removesuffix("_total") if kind.startswith("Counter") else family
        names |= {base + suffix for suffix in _SERIES_SUFFIXES[kind]}
    return names


def exported_metrics(root: Path = ROOT) -> set[str]:
    return series_names(registered_metrics(source_files(root)))


# ---- PromQL ----

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
             "atan2", "inf", "nan", "start", "end", "Inf", "NaN",
             # aggregation operators, which may be followed by a `by (...)` clause before their parenthesis
             "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
             "quantile", "limitk", "limit_ratio"}
_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{[^{}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<grouping>\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))
  | (?P<offset>\boffset\s+-?[0-9a-z]+)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>(?<![\w:])(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(?![\w:]))
  | (?P<identifier>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?
""", re.VERBOSE)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords, label names (inside
    braces or grouping clauses), strings, durations or Grafana variables."""
    names = set()
    for match in _TOKEN.finditer(expr):
        identifier = match.group("identifier")
        if identifier and not match.group("call") and identifier not in _KEYWORDS:
            names.add(identifier)
    # {__name__="x"} selects x too
    names |= set(re.findall(r"__name__\s*=\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", expr))
    return names


def unknown_metrics(expr: str, known: set[str]) -> set[str]:
    return {name for name in promql_metric_names(expr) if name not in known}


# ---- alert rules ----

def load_rules(path: Path = ALERTS_FILE) -> list[dict[str, Any]]:
    from tests.unit.compose_checks import load_yaml

    config = load_yaml(path) or {}
    return [rule for group in config.get("groups") or [] for rule in group.get("rules") or []]


def recorded_names(rules: Iterable[dict[str, Any]]) -> set[str]:
    return {rule["record"] for rule in rules if "record" in rule}


def alert_names(rules: Iterable[dict[str, Any]]) -> set[str]:
    return {rule["alert"] for rule in rules if "alert" in rule}


# ---- Alertmanager matchers ----

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def parse_matcher(text: str) -> tuple[str, str, str]:
    """`name op "value"` as (name, op, value); ValueError for anything else."""
    match = _MATCHER.match(text)
    if match is None:
        raise ValueError(f"not a matcher: {text!r}")
    return match.group(1), match.group(2), match.group(3)


def matched_alerts(matchers: Iterable[str], alerts: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The alert names (of alerts.yml) whose static labels can satisfy every matcher."""
    found = set()
    for name, rules in alerts.items():
        for rule in rules:
            labels = {"alertname": name, **{key: str(value) for key, value in (rule.get("labels") or {}).items()}}
            if all(_satisfies(labels, *parse_matcher(text)) for text in matchers):
                found.add(name)
    return found


def _satisfies(labels: dict[str, str], label: str, op: str, value: str) -> bool:
    if label not in labels:
        return True  # a label the expression produces: it may match
    actual = labels[label]
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    hit = re.fullmatch(value, actual) is not None
    return hit if op == "=~" else not hit


# ---- Java properties (MirrorMaker 2) ----

def _logical_lines(text: str) -> Iterator[str]:
    """Lines with continuations (an odd number of trailing backslashes) joined, comments and blanks dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _unescape(text: str) -> str:
    out, index = [], 0
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "u" and index + 6 <= len(text):
                out.append(chr(int(text[index + 2:index + 6], 16)))
                index += 6
                continue
            out.append(escapes.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """java.util.Properties.load semantics: `key = value`, `key: value` or `key value`; backslash escapes (so a
    regex's `\\.` must be written `\\\\.`); continuation lines; # and ! comments. A repeated key is an error here
    (Java would silently keep the last)."""
    found: dict[str, str] = {}
    for line in _logical_lines(text):
        index, key_chars = 0, []
        while index < len(line):
            char = line[index]
            if char == "\\" and index + 1 < len(line):
                key_chars.append(line[index:index + 2])
                index += 2
                continue
            if char in "=: \t\f":
                break
            key_chars.append(char)
            index += 1
        rest = line[index:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        key = _unescape("".join(key_chars))
        if key in found:
            raise ValueError(f"repeated key {key!r}")
        found[key] = _unescape(rest)
    return found


def load_properties(path: Path = MM2_FILE) -> dict[str, str]:
    return parse_properties(path.read_text())


def regex_list(value: str) -> list[str]:
    """MirrorMaker's list settings: comma-separated, spaces around items ignored."""
    return [item.strip() for item in value.split(",") if item.strip()]


# ---- the topics the code uses ----

_TOPIC = re.compile(r"sb(?:\.[a-z]+)+")


def code_topic_names(files: Iterable[Path] | None = None) -> set[str]:
    """Every sb.* topic name written as a string literal in the code (the topic families the platform uses)."""
    found = set()
    for path in files if files is not None else source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _TOPIC.fullmatch(node.value):
                found.add(node.value)
    return found


# ---- the checks (each returns its problems; empty when all is well) ----

def known_metrics(rules: list[dict[str, Any]]) -> set[str]:
    return exported_metrics() | set(EXTERNAL_METRICS) | recorded_names(rules)


def scrape_jobs(prometheus: dict[str, Any]) -> set[str]:
    return {str(job.get("job_name")) for job in prometheus.get("scrape_configs") or []}


def _job_matchers(expr: str) -> set[str]:
    return set(re.findall(r'\bjob\s*=\s*"([^"]+)"', expr))


def expression_problems(where: str, expr: str, known: set[str], jobs: set[str]) -> list[str]:
    """Every metric an expression names is known, every job it selects is scraped, and the external metrics it uses
    come from a job that is scraped."""
    problems = [f"{where}: {name} is neither exported by the code, nor a documented exporter metric, nor recorded"
                for name in sorted(unknown_metrics(expr, known))]
    problems += [f"{where}: job {job!r} is not scraped by prometheus.yml" for job in sorted(_job_matchers(expr) - jobs)]
    for prefix, needed in EXTERNAL_JOBS.items():
        if any(name.startswith(prefix) for name in promql_metric_names(expr)) and not needed <= jobs:
            problems.append(f"{where}: {prefix}* metrics need the scrape jobs {sorted(needed)}")
    return problems


def alert_problems(rules: list[dict[str, Any]], prometheus: dict[str, Any]) -> list[str]:
    """Every alert in a tier with a summary and a description and a `service` label; known metrics only; the tiers
    of one alert name distinct."""
    problems = []
    known, jobs = known_metrics(rules), scrape_jobs(prometheus)
    tiers: dict[str, list[str]] = {}
    for rule in rules:
        name = rule.get("alert") or rule.get("record")
        if not name or not isinstance(rule.get("expr"), str):
            problems.append(f"a rule without a name or an expression: {rule}")
            continue
        problems += expression_problems(name, rule["expr"], known, jobs)
        if "alert" not in rule:
            continue
        labels = rule.get("labels") or {}
        severity = labels.get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{name}: severity {severity!r} is not one of {SEVERITIES}")
        tiers.setdefault(name, []).append(str(severity))
        annotations = rule.get("annotations") or {}
        problems += [f"{name}: no {key} annotation" for key in ("summary", "description")
                     if not str(annotations.get(key) or "").strip()]
        if "service" not in labels and not re.search(r'label_replace\([\s\S]*"service"', rule["expr"]):
            problems.append(f"{name}: no `service` label (static, or made by label_replace), which inhibitions use")
    problems += [f"{name}: two rules of the same tier {severities}" for name, severities in tiers.items()
                 if len(set(severities)) != len(severities)]
    return problems


def alerts_by_name(rules: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        if "alert" in rule:
            found.setdefault(rule["alert"], []).append(rule)
    return found


_LITERAL_ALTERNATION = re.compile(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*")


def _matcher_problems(where: str, matchers: list[str], alerts: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    for text in matchers:
        try:
            label, op, value = parse_matcher(text)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if label == "alertname":
            names = value.split("|") if op == "=~" and _LITERAL_ALTERNATION.fullmatch(value) else [value]
            if op in ("=", "=~") and _LITERAL_ALTERNATION.fullmatch(value):
                problems += [f"{where}: alert {name!r} is not in alerts.yml" for name in names if name not in alerts]
            elif op == "=~" and not any(re.fullmatch(value, name) for name in alerts):
                problems.append(f"{where}: {text} matches no alert of alerts.yml")
        if label == "severity":
            values = value.split("|") if op in ("=~", "!~") else [value]
            problems += [f"{where}: severity {item!r} is not a tier" for item in values if item not in SEVERITIES]
    if not problems and not matched_alerts(matchers, alerts):
        problems.append(f"{where}: {matchers} match no alert of alerts.yml")
    return problems


def _labels_of(rule: dict[str, Any]) -> set[str]:
    """Labels an alert can carry: its static labels and any label name its expression mentions."""
    return set(rule.get("labels") or {}) | set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", rule["expr"])) | {"alertname"}


SECRET_SETTING = re.compile(r"(password|secret|token|api_key|routing_key|service_key|api_url|^url$|webhook_url)",
                            re.IGNORECASE)


def alertmanager_problems(config: dict[str, Any], rules: list[dict[str, Any]]) -> list[str]:
    """Routes reach a receiver per tier; receivers exist; inhibitions name alerts that exist and labels they carry;
    no secret value written in the file (only *_file settings)."""
    problems = []
    alerts = alerts_by_name(rules)
    receivers = {receiver.get("name") for receiver in config.get("receivers") or []}
    route = config.get("route") or {}

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("receiver") is not None and node["receiver"] not in receivers:
            problems.append(f"route {path}: receiver {node['receiver']!r} is not defined")
        for index, child in enumerate(node.get("routes") or []):
            walk(child, f"{path}/{index}")

    walk(route, "root")
    if route.get("receiver") is None:
        problems.append("the root route has no receiver")
    for tier in SEVERITIES:
        reached = route_receiver(route, {"alertname": "Any", "severity": tier})
        if reached != tier:
            problems.append(f"severity {tier} is routed to {reached!r}, not to the receiver {tier!r}")
    for index, rule in enumerate(config.get("inhibit_rules") or []):
        where = f"inhibit_rules[{index}]"
        source, target = rule.get("source_matchers") or [], rule.get("target_matchers") or []
        if not source or not target:
            problems.append(f"{where}: needs source_matchers and target_matchers (the old match forms are deprecated)")
            continue
        matcher_problems = (_matcher_problems(f"{where} source", source, alerts)
                            + _matcher_problems(f"{where} target", target, alerts))
        problems += matcher_problems
        if matcher_problems:
            continue
        involved = [rule_ for name in matched_alerts(source, alerts) | matched_alerts(target, alerts)
                    for rule_ in alerts[name]]
        for label in rule.get("equal") or []:
            if not any(label in _labels_of(rule_) for rule_ in involved):
                problems.append(f"{where}: equal label {label!r} is carried by none of its alerts")

    def secrets(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str | int) and SECRET_SETTING.search(str(key)) and not str(key).endswith("_file"):
                    problems.append(f"{path}/{key}: a secret setting with a value; use {key}_file and a Docker secret")
                secrets(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item_index, item in enumerate(node):
                secrets(item, f"{path}[{item_index}]")

    secrets(config, "")
    return problems


def route_receiver(route: dict[str, Any], labels: dict[str, str]) -> str | None:
    """The receiver Alertmanager picks for an alert with these labels (first matching child, depth first; no
    `continue`)."""
    for child in route.get("routes") or []:
        if all(_satisfies_strict(labels, *parse_matcher(text)) for text in child.get("matchers") or []):
            return route_receiver(child, labels) or child.get("receiver") or route.get("receiver")
    return route.get("receiver")


def _satisfies_strict(labels: dict[str, str], label: str, op: str, value: str) -> bool:
    return _satisfies({label: labels.get(label, ""), **labels}, label, op, value)


def inhibited(alerts: list[dict[str, str]], inhibit_rules: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Of these firing alerts (label sets), the ones Alertmanager would mute: a target of a rule while a source of that
    rule fires with the same `equal` labels (missing counts as empty); an alert never mutes itself."""
    muted = []
    for target in alerts:
        for rule in inhibit_rules:
            if not all(_satisfies_strict(target, *parse_matcher(text)) for text in rule["target_matchers"]):
                continue
            equal = rule.get("equal") or []
            if any(source is not target
                   and all(_satisfies_strict(source, *parse_matcher(text)) for text in rule["source_matchers"])
                   and all(source.get(label, "") == target.get(label, "") for label in equal)
                   for source in alerts):
                muted.append(target)
                break
    return muted


def dashboard_problems(dashboard: dict[str, Any], known: set[str], jobs: set[str]) -> list[str]:
    """Unique panel ids, every panel on the Prometheus data source with a PromQL target, known metrics only, and the
    panels inside Grafana's 24-column grid without overlapping."""
    problems = []
    panels = dashboard.get("panels") or []
    ids = [panel.get("id") for panel in panels]
    if len(set(ids)) != len(ids):
        problems.append(f"repeated panel ids: {ids}")
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title = panel.get("title")
        grid = panel.get("gridPos") or {}
        x, y, w, h = (int(grid.get(key, -1)) for key in ("x", "y", "w", "h"))
        if min(x, y) < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"panel {title!r}: gridPos {grid} is outside the 24-column grid")
        for cell in ((col, row) for col in range(max(x, 0), max(x, 0) + max(w, 0))
                     for row in range(max(y, 0), max(y, 0) + max(h, 0))):
            if cell in cells:
                problems.append(f"panel {title!r} overlaps {cells[cell]!r}")
                break
            cells[cell] = str(title)
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r}: no query")
        for target in targets:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid != "prometheus":
                problems.append(f"panel {title!r}: data source {uid!r} is not the provisioned Prometheus")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"panel {title!r}: target {target.get('refId')} has no PromQL")
                continue
            problems += expression_problems(f"panel {title!r}", expr, known, jobs)
    return problems


def mm2_problems(properties: dict[str, str], topics: set[str], changelogs: set[str], groups: set[str]) -> list[str]:
    """MirrorMaker 2 replicates every sb.* topic the code uses and the pipeline's changelogs, one way, under the
    same names, with checkpoints synced into the DR cluster's consumer groups."""
    problems = []
    wanted = {
        "clusters": "primary, dr",
        "primary->dr.enabled": "true",
        "dr->primary.enabled": "false",
        "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
        "primary->dr.emit.checkpoints.enabled": "true",
        "primary->dr.sync.group.offsets.enabled": "true",
        "primary->dr.emit.heartbeats.enabled": "true",
        "primary->dr.sync.topic.configs.enabled": "true",
        "primary->dr.offset-syncs.topic.location": "target",
        "replication.factor": "3",
    }
    for key, value in wanted.items():
        actual = properties.get(key)
        if (actual or "").replace(" ", "") != value.replace(" ", ""):
            problems.append(f"{key} is {actual!r}, expected {value!r}")
    problems += [f"{key} is {properties.get(key)!r}, expected 3" for key in properties
                 if key.endswith("replication.factor") and properties[key] != "3"]
    include = regex_list(properties.get("primary->dr.topics", ""))
    exclude = regex_list(properties.get("primary->dr.topics.exclude", ".*[\\-\\.]internal, .*\\.replica, __.*"))
    try:
        for topic in sorted(topics | changelogs):
            if not any(re.fullmatch(pattern, topic) for pattern in include):
                problems.append(f"topic {topic} is not replicated (primary->dr.topics {include})")
            elif any(re.fullmatch(pattern, topic) for pattern in exclude):
                problems.append(f"topic {topic} is excluded (primary->dr.topics.exclude {exclude})")
        for stranger in ("sbx.events", "sb", "__consumer_offsets", "mm2-offset-syncs.dr.internal", "heartbeats"):
            if any(re.fullmatch(pattern, stranger) for pattern in include) and not any(
                    re.fullmatch(pattern, stranger) for pattern in exclude):
                problems.append(f"{stranger!r} would be replicated too: is a regex's `\\.` written `\\\\.`?")
        group_patterns = regex_list(properties.get("primary->dr.groups", ""))
        problems += [f"consumer group {group} is not checkpointed (primary->dr.groups {group_patterns})"
                     for group in sorted(groups) if not any(re.fullmatch(p, group) for p in group_patterns)]
    except re.error as error:
        problems.append(f"an invalid regex: {error}")
    return problems
