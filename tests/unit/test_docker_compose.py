"""The Docker deployment (docker/) checked without a Docker engine, which the project's machines do not have.

docker/compose.yaml is validated against the Compose Specification's JSON schema, then for what the schema
cannot see: references between services, volumes and files, the Kafka cluster's quorum and durability
settings, every part of the platform as its own service whose command the real `switchboard` parser accepts,
health checks that probe what each service serves, secrets kept out of the file, the edge proxy, the DR
profile and the monitoring wiring. Every check also gets a broken copy and must report it, so that none of them
passes by checking nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from tests.unit import compose_checks as cc

Compose = dict[str, Any]
Check = Callable[[Compose, Path], list[str]]
POM = cc.ROOT / "switchboard" / "localkafka" / "pom.xml"


def pom_kafka_version() -> str:
    """The broker version the project's own tests run (the local broker's pom), which compose must match."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    assert found, f"no kafka.version in {POM}"
    return found.group(1)


def _schema_check(raw: Compose, _base: Path) -> list[str]:
    return cc.schema_errors(cc.interpolated(raw), cc.load_schema())


def load_healthcheck(base: Path = cc.DOCKER_DIR) -> Any:
    """docker/healthcheck.py (the image's switchboard-healthcheck) as a module."""
    spec = importlib.util.spec_from_file_location("switchboard_healthcheck", base / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECKS: dict[str, Check] = {
    "schema": _schema_check,
    "dependencies": lambda raw, _base: cc.undefined_dependencies(cc.interpolated(raw)),
    "volumes": lambda raw, _base: cc.volume_problems(cc.interpolated(raw)),
    "files": lambda raw, base: cc.missing_files(cc.interpolated(raw), base),
    "env files ignored": lambda raw, base: cc.uncommitted_env_problems(cc.interpolated(raw), base),
    "inline secrets": lambda raw, _base: cc.inline_secrets(raw),
    "secret-looking values": lambda raw, _base: cc.secret_looking_values(raw),
    "pinned images": lambda raw, _base: cc.unpinned_images(cc.interpolated(raw)),
    "quoted ports": lambda raw, _base: cc.unquoted_ports(raw),
    "kafka": lambda raw, _base: cc.kafka_problems(cc.interpolated(raw), pom_kafka_version()),
    "app services": lambda raw, base: cc.app_problems(cc.interpolated(raw), base),
    "commands": lambda raw, _base: cc.command_problems(cc.interpolated(raw)),
    "health checks": lambda raw, base: cc.healthcheck_problems(cc.interpolated(raw), load_healthcheck(base)),
    "edge": lambda raw, base: cc.edge_problems(cc.interpolated(raw), base),
    "dr": lambda raw, base: cc.dr_problems(cc.interpolated(raw), base, pom_kafka_version()),
    "prometheus": lambda raw, base: cc.prometheus_problems(cc.interpolated(raw), base),
    "grafana": lambda raw, base: cc.grafana_problems(cc.interpolated(raw), base),
}


@pytest.fixture(scope="module")
def raw() -> Compose:
    return cc.load_compose()


@pytest.mark.parametrize("name", CHECKS)
def test_the_compose_file_passes(name: str, raw: Compose) -> None:
    assert CHECKS[name](raw, cc.DOCKER_DIR) == []


def test_the_vendored_schema_is_the_compose_specification() -> None:
    schema = cc.load_schema()
    Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert {"service", "volume", "secret", "healthcheck"} <= set(schema["definitions"])
    assert schema["definitions"]["service"]["additionalProperties"] is False


def test_the_compose_file_also_passes_with_variables_set(raw: Compose) -> None:
    env = {"KAFKA_VERSION": pom_kafka_version(), "SWITCHBOARD_TAG": "1.2.3", "KAFKA_CLUSTER_ID": "x" * 22}
    compose = cc.interpolated(raw, env)
    assert compose["services"]["pipeline-1"]["image"] == "switchboard:1.2.3"
    assert cc.schema_errors(compose, cc.load_schema()) == []
    assert cc.kafka_problems(compose, pom_kafka_version()) == []


# ---- every check reports a broken copy ----

def services(raw: Compose) -> dict[str, Any]:
    found: dict[str, Any] = raw["services"]
    return found


def env_of(raw: Compose, service: str) -> dict[str, Any]:
    env: dict[str, Any] = services(raw)[service].setdefault("environment", {})
    return env


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


Breakage = Callable[[Compose, Path], object]

def command(raw: Compose, service: str) -> list[str]:
    found: list[str] = services(raw)[service]["command"]
    return found


def set_option(raw: Compose, service: str, option: str, value: str) -> None:
    parts = command(raw, service)
    parts[parts.index(option) + 1] = value


def healthcheck_test(raw: Compose, service: str) -> list[str]:
    found: list[str] = services(raw)[service]["healthcheck"]["test"]
    return found


BREAKAGES: list[tuple[str, str, Breakage]] = [
    ("schema", "misspelt service key", lambda raw, _: services(raw)["pipeline-1"].update({"depends-on": ["kafka-1"]})),
    ("schema", "unknown condition", lambda raw, _: services(raw)["pipeline-1"]["depends_on"]["kafka-1"].update(
        {"condition": "service_ready"})),
    ("schema", "unknown top-level key", lambda raw, _: raw.update({"service": {}})),
    ("schema", "bad service name", lambda raw, _: services(raw).update({"my worker": {"image": "x:1"}})),
    ("dependencies", "a service removed", lambda raw, _: services(raw).pop("kafka-3")),
    ("dependencies", "a misspelt dependency", lambda raw, _: services(raw)["grafana"].update(
        {"depends_on": {"promtheus": {"condition": "service_healthy"}}})),
    ("dependencies", "the pipeline worker the others wait for renamed",
     lambda raw, _: services(raw).update({"pipeline-0": services(raw).pop("pipeline-1")})),
    ("volumes", "an undeclared volume", lambda raw, _: raw["volumes"].pop("pipeline-1-state")),
    ("volumes", "an unused volume", lambda raw, _: raw["volumes"].update({"orphan": None})),
    ("volumes", "an anonymous volume", lambda raw, _: services(raw)["prometheus"]["volumes"].append("/scratch")),
    ("files", "a missing Dockerfile", lambda raw, base: (base / "Dockerfile").unlink()),
    ("files", "a missing prometheus folder", lambda raw, base: shutil.rmtree(base / "prometheus")),
    ("files", "a missing provisioning folder", lambda raw, base: shutil.rmtree(base / "grafana")),
    ("files", "a missing edge configuration", lambda raw, base: (base / "edge" / "nginx.conf").unlink()),
    ("files", "an env file without example", lambda raw, base: (base / ".env.example").unlink()),
    ("env files ignored", "an env file git would commit", lambda raw, base: (base / ".gitignore").write_text("")),
    ("inline secrets", "a literal token", lambda raw, _: env_of(raw, "receiver").update(
        {"SWITCHBOARD_WHATSAPP_ACCESS_TOKEN": "EAAG-not-a-real-token"})),
    ("inline secrets", "a literal default", lambda raw, _: env_of(raw, "grafana").update(
        {"GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_PASSWORD:-admin}"})),
    ("inline secrets", "a list-form literal", lambda raw, _: services(raw)["callbacks"].update(
        {"environment": ["SWITCHBOARD_CALLBACK_SECRET_ACME=abc123"]})),
    ("inline secrets", "a literal build arg", lambda raw, _: services(raw)["pipeline-1"].update(
        {"build": {"context": "..", "dockerfile": "docker/Dockerfile", "args": {"PIP_INDEX_PASSWORD": "hunter2"}}})),
    ("secret-looking values", "a token under an innocent name", lambda raw, _: env_of(raw, "ingest").update(
        {"SWITCHBOARD_OPTS": "EAAGm0PX4ZCpsBAKZAZBbnJQ6ZCZAnotreal"})),
    ("secret-looking values", "a random string", lambda raw, _: env_of(raw, "edge").update(
        {"UPSTREAM": "q8Xv2LmN4pR7sT1wY9zB3cD5fG6hJ0kLQ"})),
    ("secret-looking values", "a private key", lambda raw, _: env_of(raw, "edge").update(
        {"TLS": "-----BEGIN RSA PRIVATE KEY-----"})),
    ("secret-looking values", "a secret on the command line", lambda raw, _: command(raw, "ingest").extend(
        ["--signing-secret", "abc"])),
    ("pinned images", "a latest tag", lambda raw, _: services(raw)["grafana"].update(
        {"image": "grafana/grafana:latest"})),
    ("pinned images", "no tag", lambda raw, _: services(raw)["prometheus"].update({"image": "prom/prometheus"})),
    ("quoted ports", "an unquoted port", lambda raw, _: services(raw)["prometheus"].update({"ports": [9090]})),
    ("kafka", "two nodes", lambda raw, _: services(raw).pop("kafka-3")),
    ("kafka", "a repeated node id", lambda raw, _: env_of(raw, "kafka-3").update({"KAFKA_NODE_ID": "2"})),
    ("kafka", "a voter missing", lambda raw, _: [env_of(raw, f"kafka-{n}").update(
        {"KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka-1:9093,2@kafka-2:9093"}) for n in (1, 2, 3)]),
    ("kafka", "a voter on the wrong port", lambda raw, _: [env_of(raw, f"kafka-{n}").update(
        {"KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9092"}) for n in (1, 2, 3)]),
    ("kafka", "two cluster ids", lambda raw, _: env_of(raw, "kafka-2").update({"CLUSTER_ID": "another"})),
    ("kafka", "replication factor 1", lambda raw, _: env_of(raw, "kafka-1").update(
        {"KAFKA_DEFAULT_REPLICATION_FACTOR": "1"})),
    ("kafka", "offsets replicated twice", lambda raw, _: env_of(raw, "kafka-2").update(
        {"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "2"})),
    ("kafka", "min ISR 1", lambda raw, _: env_of(raw, "kafka-3").update({"KAFKA_MIN_INSYNC_REPLICAS": "1"})),
    ("kafka", "topics auto-created", lambda raw, _: env_of(raw, "kafka-1").update(
        {"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true"})),
    ("kafka", "broker-only node", lambda raw, _: env_of(raw, "kafka-1").update({"KAFKA_PROCESS_ROLES": "broker"})),
    ("kafka", "no health check", lambda raw, _: services(raw)["kafka-2"].pop("healthcheck")),
    ("kafka", "a shared data volume", lambda raw, _: services(raw)["kafka-2"].update(
        {"volumes": ["kafka-1-data:/var/lib/kafka/data"]})),
    ("kafka", "another broker version", lambda raw, _: services(raw)["kafka-1"].update(
        {"image": "apache/kafka:4.0.0"})),
    ("kafka", "a wrong advertised name", lambda raw, _: env_of(raw, "kafka-3").update(
        {"KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka-1:9092,HOST://localhost:39094"})),
    ("app services", "the normaliser removed", lambda raw, _: services(raw).pop("normaliser")),
    ("app services", "one pipeline worker", lambda raw, _: services(raw).pop("pipeline-2")),
    ("app services", "two workers with one name", lambda raw, _: set_option(raw, "pipeline-2", "--name", "pipeline-1")),
    ("app services", "the receiver not replicated", lambda raw, _: services(raw)["receiver"].pop("deploy")),
    ("app services", "a replicated service on a host port", lambda raw, _: services(raw)["receiver"].update(
        {"ports": ["127.0.0.1:8088:8088"]})),
    ("app services", "not waiting for health", lambda raw, _: services(raw)["pipeline-1"]["depends_on"].update(
        {"kafka-2": {"condition": "service_started"}})),
    ("app services", "a node missing from bootstrap", lambda raw, _: set_option(
        raw, "callbacks", "--bootstrap", "kafka-1:9092,kafka-2:9092")),
    ("app services", "state off the volume", lambda raw, _: services(raw)["pipeline-2"].update(
        {"volumes": ["../pipeline.toml:/etc/switchboard/pipeline.toml:ro"]})),
    ("app services", "two workers on one state volume", lambda raw, _: services(raw)["pipeline-2"].update(
        {"volumes": ["../pipeline.toml:/etc/switchboard/pipeline.toml:ro",
                     "pipeline-1-state:/var/lib/switchboard/state"]})),
    ("app services", "another Dockerfile", lambda raw, _: services(raw)["ingest"].update({"build": ".."})),
    ("app services", "pipeline.toml not mounted", lambda raw, _: services(raw)["normaliser"].pop("volumes")),
    ("app services", "another declaration than the mounted one", lambda raw, _: set_option(
        raw, "normaliser", "--config", "pipeline.toml")),
    ("app services", "pipeline.toml missing", lambda raw, base: (base.parent / "pipeline.toml").unlink()),
    ("files", "pipeline.toml missing", lambda raw, base: (base.parent / "pipeline.toml").unlink()),
    ("commands", "an unknown subcommand", lambda raw, _: command(raw, "followups").__setitem__(0, "follow-ups")),
    ("commands", "an option the subcommand lacks", lambda raw, _: command(raw, "callbacks").extend(
        ["--web-port", "8081"])),
    ("commands", "a required option missing", lambda raw, _: services(raw)["pipeline-2"].update(
        {"command": ["pipeline", "--bootstrap", "kafka-1:9092,kafka-2:9092,kafka-3:9092"]})),
    ("commands", "a value of the wrong type", lambda raw, _: set_option(raw, "receiver", "--receiver-port", "http")),
    ("commands", "an unknown role", lambda raw, _: set_option(raw, "normaliser", "--role", "normalizer")),
    ("health checks", "a service without one", lambda raw, _: services(raw)["normaliser"].pop("healthcheck")),
    ("health checks", "a disabled one", lambda raw, _: services(raw)["alertmanager"]["healthcheck"].update(
        {"disable": True})),
    ("health checks", "a check the script does not know", lambda raw, _: healthcheck_test(raw, "callbacks").__setitem__(
        2, "members")),
    ("health checks", "the wrong port", lambda raw, _: healthcheck_test(raw, "pipeline-2").__setitem__(
        3, "http://127.0.0.1:8080/readyz")),
    ("health checks", "another consumer group", lambda raw, _: services(raw)["normaliser"]["healthcheck"].update(
        {"test": ["CMD", "switchboard-healthcheck", "group", "switchboard-callbacks", "--bootstrap",
                  "kafka-1:9092,kafka-2:9092,kafka-3:9092"]})),
    ("health checks", "a store outside the state", lambda raw, _: services(raw)["followups"]["healthcheck"].update(
        {"test": ["CMD", "switchboard-healthcheck", "store", "/tmp/followups"]})),
    ("health checks", "another role's port", lambda raw, _: healthcheck_test(raw, "normaliser").__setitem__(
        3, "http://127.0.0.1:8084/readyz")),
    ("health checks", "not the image's script", lambda raw, _: services(raw)["ingest"]["healthcheck"].update(
        {"test": ["CMD", "true"]})),
    ("edge", "no edge", lambda raw, _: services(raw).pop("edge")),
    ("edge", "webhooks to the wrong port", lambda raw, base: rewrite(
        base / "edge" / "nginx.conf", "receiver:8088", "receiver:8080")),
    ("edge", "events to the receivers", lambda raw, base: rewrite(
        base / "edge" / "nginx.conf", "ingest:8090", "receiver:8088")),
    ("edge", "names resolved once", lambda raw, base: rewrite(
        base / "edge" / "nginx.conf", "resolver 127.0.0.11", "# resolver 127.0.0.11")),
    ("dr", "the primary's cluster id", lambda raw, _: [env_of(raw, f"dr-kafka-{n}").update(
        {"CLUSTER_ID": "${KAFKA_CLUSTER_ID:-839Ya_XfT7ebiYO-l8PJOA}"}) for n in (1, 2, 3)]),
    ("dr", "a DR node outside the profile", lambda raw, _: services(raw)["dr-kafka-2"].pop("profiles")),
    ("dr", "a DR node in the primary quorum", lambda raw, _: env_of(raw, "dr-kafka-3").update(
        {"KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"})),
    ("dr", "MirrorMaker pointed at the wrong cluster", lambda raw, base: rewrite(
        base / "mirrormaker" / "mm2.properties", "dr.bootstrap.servers = dr-kafka-1",
        "dr.bootstrap.servers = kafka-1")),
    ("dr", "no MirrorMaker", lambda raw, _: services(raw).pop("mirror-maker")),
    ("prometheus", "a pipeline worker not scraped", lambda raw, base: rewrite(
        base / "prometheus" / "prometheus.yml", '"pipeline-1:8081", "pipeline-2:8081"', '"pipeline-1:8081"')),
    ("prometheus", "the API not scraped", lambda raw, base: rewrite(
        base / "prometheus" / "prometheus.yml", '["api:8092"]', '["localhost:9090"]')),
    ("edge", "reads to the receivers", lambda raw, base: rewrite(
        base / "edge" / "nginx.conf", "location /v1/stats/ {\n            set $api api:8092;",
        "location /v1/stats/ {\n            set $api receiver:8088;")),
    ("app services", "the API sharing the follow-ups' state", lambda raw, _: services(raw)["api"].update(
        {"volumes": ["../pipeline.toml:/etc/switchboard/pipeline.toml:ro",
                     "followups-state:/var/lib/switchboard/state"]})),
    ("prometheus", "a wrong port", lambda raw, base: rewrite(
        base / "prometheus" / "prometheus.yml", '"pipeline-2:8081"', '"pipeline-2:9999"')),
    ("prometheus", "a target that is no service", lambda raw, base: rewrite(
        base / "prometheus" / "prometheus.yml", '["kafka-exporter:9308"]', '["kafka_exporter:9308"]')),
    ("prometheus", "config not mounted", lambda raw, _: services(raw)["prometheus"].update(
        {"volumes": ["prometheus-data:/prometheus"]})),
    ("prometheus", "no rules", lambda raw, base: (base / "prometheus" / "alerts.yml").unlink()),
    ("prometheus", "no Alertmanager", lambda raw, base: rewrite(
        base / "prometheus" / "prometheus.yml", '["alertmanager:9093"]', '["alertmanagr:9093"]')),
    ("grafana", "a metric without panel", lambda raw, base: rewrite(
        base / "grafana" / "provisioning" / "dashboards" / "switchboard.json",
        "switchboard_consumer_lag", "switchboard_consumer_offset")),
    ("grafana", "a data source that is no service", lambda raw, base: rewrite(
        base / "grafana" / "provisioning" / "datasources" / "prometheus.yaml", "prometheus:9090", "prom:9090")),
    ("grafana", "a panel on another data source", lambda raw, base: rewrite(
        base / "grafana" / "provisioning" / "datasources" / "prometheus.yaml", "uid: prometheus", "uid: prom")),
    ("grafana", "provisioning not mounted", lambda raw, _: services(raw)["grafana"].update(
        {"volumes": ["grafana-data:/var/lib/grafana"]})),
]


@pytest.mark.parametrize(("check", "breakage"), [pytest.param(check, breakage, id=f"{check}: {what}")
                                                 for check, what, breakage in BREAKAGES])
def test_a_broken_copy_is_reported(check: str, breakage: Breakage, raw: Compose, tmp_path: Path) -> None:
    base = tmp_path / "docker"
    shutil.copytree(cc.DOCKER_DIR, base)
    shutil.copy(cc.ROOT / "pipeline.toml", tmp_path)
    broken = copy.deepcopy(raw)
    assert CHECKS[check](broken, base) == [], "the unbroken copy must pass first"
    breakage(broken, base)
    assert CHECKS[check](broken, base) != []


def test_every_check_has_a_breakage() -> None:
    assert {check for check, _, _ in BREAKAGES} == set(CHECKS)


def test_secret_references_are_allowed(raw: Compose) -> None:
    broken = copy.deepcopy(raw)
    env_of(broken, "receiver").update({"WHATSAPP_ACCESS_TOKEN": "${WHATSAPP_ACCESS_TOKEN}", "API_KEY": None,
                                       "SIGNING_KEY_FILE": "/run/secrets/signing_key", "KAFKA_NODE_ID": "1"})
    assert cc.inline_secrets(broken) == []
    assert cc.secret_looking_values(broken) == []


def test_ordinary_values_do_not_look_like_secrets() -> None:
    for value in ("839Ya_XfT7ebiYO-l8PJOA", "/etc/grafana/provisioning/dashboards/switchboard.json",
                  "PLAINTEXT://kafka-1:9092,HOST://localhost:39092", "switchboard-pipeline-contacts-changelog",
                  "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"):
        assert not cc.looks_like_secret(value), value


# ---- loading and interpolation ----

def test_a_repeated_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  a:\n    image: x:1\n  a:\n    image: y:1\n")
    with pytest.raises(ValueError, match="duplicate key 'a' \\(line 4\\)"):
        cc.load_compose(path)


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text("x-base: &base {image: x:1, restart: always}\nservices:\n  a:\n    <<: *base\n    image: y:1\n")
    assert cc.load_compose(path)["services"]["a"] == {"image": "y:1", "restart": "always"}


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A:-x}", {}, "x"),
    ("${A:-x}", {"A": ""}, "x"),
    ("${A-x}", {"A": ""}, ""),
    ("${A:-x}", {"A": "y"}, "y"),
    ("$A and ${B}", {"A": "1", "B": "2"}, "1 and 2"),
    ("cost $$5", {}, "cost $5"),
    ("${A}", {}, ""),
    ("${A:+on}", {"A": "1"}, "on"),
    ("${A:+on}", {"A": ""}, ""),
    ("${A+on}", {"A": ""}, "on"),
])
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert cc.interpolate(text, env) == expected


def test_a_required_variable_must_be_set() -> None:
    with pytest.raises(ValueError, match="required variable A"):
        cc.interpolate("${A:?set A in docker/.env}", {})


# ---- the Dockerfile, its ignore file and the docs ----

DOCKERFILE = cc.DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = cc.DOCKER_DIR / "Dockerfile.dockerignore"


def test_the_dockerfile_passes() -> None:
    assert cc.dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(("old", "new"), [
    ("USER switchboard:switchboard", "USER root"),
    ("USER switchboard:switchboard\n", ""),
    ("--require-hashes ", ""),
    ("pip install --no-deps .", "pip install ."),
    ("ARG PYTHON_IMAGE=python:3.11-slim", "ARG PYTHON_IMAGE=python:3.12-slim"),
    ('ENTRYPOINT ["switchboard"]', 'ENTRYPOINT ["python"]'),
])
def test_a_broken_dockerfile_is_reported(old: str, new: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    assert cc.dockerfile_problems(text.replace(old, new)) != []


def test_the_build_context_keeps_what_the_build_needs() -> None:
    text = DOCKERIGNORE.read_text()
    assert cc.dockerignore_problems(text) == []
    assert cc.dockerignore_problems(text.replace(".venv\n", "")) != []
    assert cc.dockerignore_problems(text + "streams\n") != []


def test_the_deployment_guide_names_every_service(raw: Compose) -> None:
    guide = (cc.ROOT / "docs" / "DEPLOYING.md").read_text()
    assert [name for name in services(raw) if f"`{name}`" not in guide] == []


# ---- every part's command, parsed by the real `switchboard` parser ----

APP_SERVICES = sorted(cc.app_services(cc.interpolated(cc.load_compose())))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_command_is_a_real_switchboard_subcommand(name: str, raw: Compose) -> None:
    command = cc.command_of(cc.interpolated(raw)["services"][name])
    args, error = cc.parse_command(cc.switchboard_parser(), command)
    assert args is not None, error
    assert args.handler.__name__.lstrip("_") in {command[0], "project", "followups"}
    assert command[0] == "run", "compose runs each part through its role"


def test_every_part_runs_as_its_own_service(raw: Compose) -> None:
    parts = sorted(cc.subcommand(service) for service in cc.app_services(cc.interpolated(raw)).values())
    assert parts == ["api", "callbacks", "ingest", "normaliser", "pipeline", "pipeline", "projections", "receiver"]
