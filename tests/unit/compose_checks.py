"""Offline checks of the Docker deployment (docker/), for machines without a Docker engine.

Each check takes the parsed compose file (and the folder it lives in) and returns a list of problems, empty
when all is well, so that a test can assert both that the real file passes and that a broken copy fails.

The schema is the Compose Specification's own JSON schema (compose-spec/compose-spec, schema/compose-spec.json,
Apache-2.0; the schema Docker Compose v2 validates against), vendored unchanged as tests/unit/data/compose-spec.json
from the copy that the npm package dclint 3.1.0 ships as schemas/compose.schema.json
(sha256 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496). To update it, take the newer file
the same way and run these tests.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

Compose = dict[str, Any]

KAFKA_SERVICE = re.compile(r"kafka-\d+")
APP_SERVICES = ("workers", "api")
PLANNED_METRICS = ("switchboard_stage_events_total", "switchboard_consumer_lag", "switchboard_stage_errors_total")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL", re.IGNORECASE)
_REFERENCE_ONLY = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


# ---- loading ----

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _repeated_keys(root: Any) -> list[str]:
    """Keys written twice in one mapping, which PyYAML silently lets win and Compose rejects."""
    found, seen, pending = [], set(), [root]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = [key.value for key, _ in node.value if key.tag != _MERGE_TAG]
            found += [f"duplicate key {key.value!r} (line {key.start_mark.line + 1})"
                      for key, _ in node.value if key.tag != _MERGE_TAG and keys.count(key.value) > 1]
            pending += [value for _, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value
    return found


def load_yaml(path: Path) -> Any:
    """The YAML file as PyYAML's safe loader reads it; a key repeated in one mapping is an error."""
    text = path.read_text()
    repeated = _repeated_keys(yaml.compose(text, Loader=yaml.SafeLoader))
    if repeated:
        raise ValueError(f"{path}: {'; '.join(sorted(set(repeated)))}")
    return yaml.safe_load(text)


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    """The compose file as written (anchors and merge keys resolved, ${VARIABLES} not yet)."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping")
    return data


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`value` with Compose's variable syntax filled in from `env` (the shell's environment, for Compose).

    Covers $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+other}, the forms without the colon, and $$.
    """

    def replace(match: re.Match[str]) -> str:
        escaped, braced, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = braced or bare
        current = env.get(name)
        if operator in (":-", "-"):
            use_default = current is None or (operator == ":-" and current == "")
            return argument if use_default else str(current)
        if operator in (":+", "+"):
            is_set = current is not None and (operator == "+" or current != "")
            return argument if is_set else ""
        if operator in (":?", "?") and (current is None or (operator == ":?" and current == "")):
            raise ValueError(f"required variable {name} is not set: {argument}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def interpolated(compose: Compose, env: Mapping[str, str] | None = None) -> Compose:
    """The compose file as `docker compose config` sees it with only `env` set (default: nothing set)."""
    variables = env or {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str):
            return interpolate(node, variables)
        return node

    result: Compose = walk(compose)
    return result


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


# ---- small accessors ----

def services(compose: Compose) -> dict[str, dict[str, Any]]:
    found = compose.get("services") or {}
    return found if isinstance(found, dict) else {}


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's environment in its map form (the list form `KEY=value` / `KEY` normalised)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return dict(pairs)
    return {str(key): (None if value is None else str(value)) for key, value in env.items()}


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the list form means service_started."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def mounts(service: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(type, source, target) of each volume entry: type is "volume" (named), "bind" or another long-form type."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:
                yield "volume", "", parts[0]  # anonymous volume
                continue
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            yield kind, source, target
        else:
            yield entry.get("type", "volume"), str(entry.get("source", "")), str(entry.get("target", ""))


def kafka_services(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services(compose).items() if KAFKA_SERVICE.fullmatch(name)}


def listener_ports(listeners: str) -> dict[str, int]:
    """`NAME://host:port,...` as {NAME: port}."""
    ports = {}
    for listener in filter(None, (part.strip() for part in listeners.split(","))):
        name, _, address = listener.partition("://")
        ports[name] = int(address.rsplit(":", 1)[1])
    return ports


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """The container-side ports a service exposes to the compose network (expose and ports)."""
    found = {int(str(port).split("/")[0]) for port in service.get("expose") or []}
    for port in service.get("ports") or []:
        target = port.get("target") if isinstance(port, dict) else str(port).split("/")[0].rsplit(":", 1)[-1]
        found.add(int(str(target)))
    return found


def command_option(command: list[str], option: str) -> str | None:
    for index, item in enumerate(command):
        if item == option and index + 1 < len(command):
            return command[index + 1]
        if item.startswith(option + "="):
            return item.split("=", 1)[1]
    return None


# ---- the checks ----

def schema_errors(compose: Compose, schema: Mapping[str, Any]) -> list[str]:
    validator = Draft7Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
            for error in sorted(validator.iter_errors(compose), key=lambda error: list(map(str, error.path)))]


def undefined_dependencies(compose: Compose) -> list[str]:
    defined = set(services(compose))
    return [f"{name} depends on undefined service {dependency!r}"
            for name, service in services(compose).items()
            for dependency in dependencies(service) if dependency not in defined]


def volume_problems(compose: Compose) -> list[str]:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    problems = []
    for name, service in services(compose).items():
        for kind, source, target in mounts(service):
            if kind != "volume":
                continue
            if not source:
                problems.append(f"{name}: anonymous volume at {target} (its data is lost on `down`; name it)")
                continue
            used.add(source)
            if source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under top-level volumes")
    problems += [f"volume {volume!r} is declared but no service uses it" for volume in sorted(declared - used)]
    return problems


def env_files(service: Mapping[str, Any]) -> list[str]:
    declared = service.get("env_file") or []
    entries = [declared] if isinstance(declared, str | dict) else declared
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


def missing_files(compose: Compose, base: Path) -> list[str]:
    """Files the compose file refers to that are not in the repository (env files: their committed example)."""
    problems = []
    for name, service in services(compose).items():
        build = service.get("build")
        if build is not None:
            build = {"context": build} if isinstance(build, str) else build
            context = base / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif "dockerfile_inline" not in build and not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        for kind, source, _target in mounts(service):
            if kind == "bind" and not source.startswith("/") and not (base / source).exists():
                problems.append(f"{name}: bind-mount source {base / source} does not exist")
        for env_file in env_files(service):
            example = base / f"{env_file}.example"
            if not example.is_file():
                problems.append(f"{name}: env file {env_file} has no committed example {example}")
    for section in ("secrets", "configs"):
        for item, spec in (compose.get(section) or {}).items():
            if "file" in (spec or {}) and not (base / spec["file"]).exists():
                problems.append(f"{section} {item}: file {base / spec['file']} does not exist")
    return problems


def uncommitted_env_problems(compose: Compose, base: Path) -> list[str]:
    """Each env file a service reads (it holds secrets) must be ignored by git in its folder."""
    gitignore = base / ".gitignore"
    ignored = set(gitignore.read_text().split()) if gitignore.is_file() else set()
    return [f"{name}: env file {env_file} is not listed in {gitignore}"
            for name, service in services(compose).items()
            for env_file in env_files(service) if env_file not in ignored and f"/{env_file}" not in ignored]


def inline_secrets(raw_compose: Compose) -> list[str]:
    """Secret-looking variables (TOKEN, SECRET, PASSWORD, KEY...) given a literal value in the compose file.

    Allowed: no value (passed through), a bare ${VAR} reference, and NAME_FILE pointing into /run/secrets.
    Takes the file before interpolation, so that ${VAR:-literal} counts as a literal.
    """
    problems = []
    for name, service in services(raw_compose).items():
        build = service.get("build")
        args = build.get("args") if isinstance(build, dict) else None
        sources = [("environment", environment(service))]
        if args:
            sources.append(("build args", environment({"environment": args})))
        for where, variables in sources:
            for key, value in variables.items():
                if not SECRET_NAME.search(key) or value is None or value == "":
                    continue
                if _REFERENCE_ONLY.fullmatch(value):
                    continue
                if key.upper().endswith("_FILE") and value.startswith("/run/secrets/"):
                    continue
                problems.append(f"{name}: {where} {key} has an inline value; use an env file or a Docker secret")
    return problems


def unpinned_images(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        image = service.get("image")
        if image is None:
            if "build" not in service:
                problems.append(f"{name}: neither image nor build")
            continue
        reference = image.split("@", 1)[0]
        tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else ""
        if "@" not in image and tag in ("", "latest"):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
    return problems


def unquoted_ports(raw_compose: Compose) -> list[str]:
    """Short-syntax ports that YAML 1.1 (PyYAML) could read as numbers (e.g. 9090:9090, base 60)."""
    return [f"{name}: {where} entry {port!r} must be a quoted string"
            for name, service in services(raw_compose).items()
            for where in ("ports", "expose")
            for port in service.get(where) or [] if not isinstance(port, str | dict)]


def kafka_problems(compose: Compose, kafka_version: str) -> list[str]:
    """A three-node KRaft cluster of combined nodes with a complete quorum, RF 3 and min ISR 2."""
    nodes = kafka_services(compose)
    if len(nodes) != 3:
        return [f"expected 3 Kafka services kafka-1..3, found {sorted(nodes)}"]
    problems = []
    envs = {name: environment(service) for name, service in nodes.items()}
    node_ids: dict[str, int] = {}
    for name, env in envs.items():
        try:
            node_ids[name] = int(env.get("KAFKA_NODE_ID") or "")
        except ValueError:
            problems.append(f"{name}: KAFKA_NODE_ID is missing or not a number")
    if len(set(node_ids.values())) != len(node_ids):
        problems.append(f"node ids are not distinct: {node_ids}")
    for setting in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
        values = {env.get(setting) for env in envs.values()}
        if len(values) != 1 or None in values or "" in values:
            problems.append(f"{setting} must be set, and the same on every node: {sorted(map(str, values))}")
    wanted = {
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
    }
    for name, env in envs.items():
        service = nodes[name]
        image = str(service.get("image", ""))
        if image != f"apache/kafka:{kafka_version}":
            problems.append(f"{name}: image {image!r} is not apache/kafka:{kafka_version}, the tested broker version")
        for key, value in wanted.items():
            actual = (env.get(key) or "").replace(" ", "")
            if sorted(actual.split(",")) != sorted(value.split(",")):
                problems.append(f"{name}: {key} is {env.get(key)!r}, expected {value!r}")
        problems += _listener_problems(name, env, node_ids, nodes)
        if not service.get("healthcheck", {}).get("test") or service["healthcheck"].get("disable"):
            problems.append(f"{name}: no health check")
        log_dir = env.get("KAFKA_LOG_DIRS")
        if not any(kind == "volume" and source and target == log_dir for kind, source, target in mounts(service)):
            problems.append(f"{name}: KAFKA_LOG_DIRS {log_dir!r} is not on a named volume")
    data_volumes = [source for service in nodes.values() for kind, source, _ in mounts(service) if kind == "volume"]
    if len(set(data_volumes)) != len(data_volumes):
        problems.append(f"Kafka nodes share a data volume: {data_volumes}")
    return problems


def _listener_problems(name: str, env: Mapping[str, str | None], node_ids: Mapping[str, int],
                       nodes: Mapping[str, Any]) -> list[str]:
    problems = []
    try:
        listeners = listener_ports(env.get("KAFKA_LISTENERS") or "")
        controller_port = listeners[env.get("KAFKA_CONTROLLER_LISTENER_NAMES") or "CONTROLLER"]
    except (KeyError, IndexError, ValueError):
        return [f"{name}: KAFKA_LISTENERS has no controller listener"]
    expected = {f"{node_ids[other]}@{other}:{controller_port}" for other in nodes if other in node_ids}
    voters = set(filter(None, (env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or "").split(",")))
    if voters != expected:
        problems.append(f"{name}: KAFKA_CONTROLLER_QUORUM_VOTERS {sorted(voters)} is not all three nodes "
                        f"{sorted(expected)}")
    advertised = env.get("KAFKA_ADVERTISED_LISTENERS") or ""
    inter_broker = env.get("KAFKA_INTER_BROKER_LISTENER_NAME") or "PLAINTEXT"
    if f"{inter_broker}://{name}:{listeners.get(inter_broker)}" not in advertised.split(","):
        problems.append(f"{name}: does not advertise {inter_broker}://{name}:{listeners.get(inter_broker)}")
    return problems


def bootstrap_servers(compose: Compose) -> set[str]:
    """host:port of every Kafka node's inter-broker (compose network) listener."""
    found = set()
    for name, service in kafka_services(compose).items():
        env = environment(service)
        listener = env.get("KAFKA_INTER_BROKER_LISTENER_NAME") or "PLAINTEXT"
        found.add(f"{name}:{listener_ports(env.get('KAFKA_LISTENERS') or '').get(listener)}")
    return found


def app_problems(compose: Compose, base: Path) -> list[str]:
    """workers and api: built from docker/Dockerfile, waiting for a healthy Kafka, pointed at all of it."""
    problems = []
    kafka = set(kafka_services(compose))
    for name in APP_SERVICES:
        service = services(compose).get(name)
        if service is None:
            problems.append(f"service {name!r} is missing")
            continue
        build = service.get("build") or {}
        build = {"context": build} if isinstance(build, str) else build
        dockerfile = (base / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
        if dockerfile != (base / "Dockerfile").resolve():
            problems.append(f"{name}: not built from the Dockerfile beside the compose file ({dockerfile})")
        unhealthy = {node for node in kafka if dependencies(service).get(node) != "service_healthy"}
        if unhealthy:
            problems.append(f"{name}: does not wait for Kafka nodes {sorted(unhealthy)} to be healthy")
        command = service.get("command")
        if not isinstance(command, list) or not command:
            problems.append(f"{name}: command must be a non-empty list")
        pipeline = environment(service).get("SWITCHBOARD_PIPELINE") or ""
        host_file = _host_path(service, pipeline, base)
        if host_file is None or host_file.name != "pipeline.toml" or not host_file.is_file():
            problems.append(f"{name}: SWITCHBOARD_PIPELINE {pipeline!r} is not the mounted pipeline.toml")
    workers = services(compose).get("workers") or {}
    worker_command: list[str] = workers["command"] if isinstance(workers.get("command"), list) else []
    if worker_command[:1] != ["worker"]:
        problems.append(f"workers: command {worker_command} does not run `switchboard worker`")
    bootstrap = set((command_option(worker_command, "--bootstrap") or "").split(","))
    if bootstrap != bootstrap_servers(compose):
        problems.append(f"workers: --bootstrap {sorted(bootstrap)} is not every Kafka node "
                        f"{sorted(bootstrap_servers(compose))}")
    data_dir = command_option(worker_command, "--data-dir")
    if not any(kind == "volume" and source and target == data_dir for kind, source, target in mounts(workers)):
        problems.append(f"workers: --data-dir {data_dir!r} is not on a named volume")
    return problems


def _container_path(service: Mapping[str, Any], host_path: Path, base: Path) -> str | None:
    """Where a file or folder under a bind mount appears inside the service's container."""
    for kind, source, target in mounts(service):
        if kind != "bind":
            continue
        mounted = (base / source).resolve()
        if host_path.resolve() == mounted:
            return target
        if mounted in host_path.resolve().parents:
            return f"{target}/{host_path.resolve().relative_to(mounted).as_posix()}"
    return None


def _host_path(service: Mapping[str, Any], container_path: str, base: Path) -> Path | None:
    """The repository file behind a path inside the service's container, if a bind mount provides it."""
    for kind, source, target in mounts(service):
        if kind == "bind" and (container_path == target or container_path.startswith(target.rstrip("/") + "/")):
            return (base / source / container_path[len(target):].lstrip("/")).resolve()
    return None


def prometheus_problems(compose: Compose, base: Path) -> list[str]:
    """Prometheus loads docker/prometheus/prometheus.yml, which scrapes workers and api where they listen."""
    prometheus = services(compose).get("prometheus")
    if prometheus is None:
        return ["service 'prometheus' is missing"]
    config_path = _host_path(prometheus, "/etc/prometheus/prometheus.yml", base)
    if config_path is None or not config_path.is_file():
        return ["prometheus: /etc/prometheus/prometheus.yml is not mounted from the repository"]
    config = load_yaml(config_path) or {}
    problems = []
    scraped: set[str] = set()
    for job in config.get("scrape_configs") or []:
        targets = [target for static in job.get("static_configs") or [] for target in static.get("targets") or []]
        targets += [f"{host}:{dns.get('port')}" for dns in job.get("dns_sd_configs") or [] for host in dns["names"]]
        for target in targets:
            host, _, port = target.rpartition(":")
            if host == "localhost":
                continue
            service = services(compose).get(host)
            if service is None:
                problems.append(f"prometheus job {job.get('job_name')}: target {target} is not a service")
            elif int(port) not in container_ports(service):
                problems.append(f"prometheus job {job.get('job_name')}: {host} does not expose port {port}")
            else:
                scraped.add(host)
    problems += [f"prometheus does not scrape {name}" for name in APP_SERVICES if name not in scraped]
    return problems


def grafana_problems(compose: Compose, base: Path) -> list[str]:
    """Grafana gets the Prometheus data source and a dashboard of throughput, lag and errors."""
    grafana = services(compose).get("grafana")
    if grafana is None:
        return ["service 'grafana' is missing"]
    provisioning = base / "grafana" / "provisioning"
    if _container_path(grafana, provisioning, base) != "/etc/grafana/provisioning":
        return ["grafana: docker/grafana/provisioning is not mounted on /etc/grafana/provisioning"]
    problems = []
    sources = [source for path in sorted((provisioning / "datasources").glob("*.y*ml"))
               for source in (load_yaml(path) or {}).get("datasources") or []]
    prometheus_uids = set()
    for source in sources:
        if source.get("type") != "prometheus":
            continue
        match = re.fullmatch(r"https?://([^:/]+):(\d+)/?", str(source.get("url")))
        target = services(compose).get(match.group(1)) if match else None
        if match is None or target is None or int(match.group(2)) not in container_ports(target):
            problems.append(f"grafana data source {source.get('name')}: {source.get('url')} is not a service")
        else:
            prometheus_uids.add(source.get("uid"))
    if not prometheus_uids:
        problems.append("grafana: no provisioned Prometheus data source")
    providers = [provider for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
                 for provider in (load_yaml(path) or {}).get("providers") or []]
    dashboards: list[Path] = []
    for provider in providers:
        folder = _host_path(grafana, provider.get("options", {}).get("path", ""), base)
        if folder is None or not folder.is_dir():
            problems.append(f"grafana dashboard provider {provider.get('name')}: its path is not mounted")
        else:
            dashboards += sorted(folder.glob("*.json"))
    if not dashboards:
        problems.append("grafana: no provisioned dashboard")
    expressions = []
    for path in dashboards:
        for panel in json.loads(path.read_text()).get("panels") or []:
            for target in panel.get("targets") or []:
                expressions.append(target.get("expr", ""))
                uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                if uid not in prometheus_uids:
                    problems.append(f"{path.name}: panel {panel.get('title')!r} uses unknown data source {uid!r}")
    problems += [f"grafana dashboards have no panel on {metric}"
                 for metric in PLANNED_METRICS if not any(metric in expr for expr in expressions)]
    return problems


# ---- the Dockerfile ----

def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each a list of (INSTRUCTION, arguments) with ARG defaults substituted."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            args[name] = default
            continue
        rest = interpolate(rest.strip(), args) if instruction == "FROM" else rest.strip()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, rest))
    return stages


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    if not stages:
        return ["no FROM"]
    problems = []
    for stage in stages:
        image = stage[0][1].split()[0]
        if image != "python:3.11-slim":
            problems.append(f"stage FROM {image}: not python:3.11-slim")
    runs = [" ".join(rest.split()) for stage in stages for instruction, rest in stage if instruction == "RUN"]
    if not any(re.search(r"pip install\b.*--require-hashes\b.*-r requirements\.lock", run) for run in runs):
        problems.append("the lock is not installed with pip install --require-hashes -r requirements.lock")
    if not any(re.search(r"pip install\b.*--no-deps\b.*\s\.(\s|$)", run) for run in runs):
        problems.append("the project is not installed with pip install --no-deps .")
    final = stages[-1]
    users = [rest.split(":")[0] for instruction, rest in final if instruction == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("the final stage does not run as a non-root USER")
    entrypoints = [rest for instruction, rest in final if instruction == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1])[:1] != ["switchboard"]:
        problems.append("the entrypoint is not [\"switchboard\"]")
    return problems


def project_packages() -> list[str]:
    """The top-level packages pyproject.toml installs (setuptools' find include patterns, without the '*')."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def dockerignore_problems(text: str) -> list[str]:
    """The build context keeps what `pip install .` needs and leaves out the bulky and private parts."""
    patterns = {line.strip().rstrip("/") for line in text.splitlines() if line.strip() and not line.startswith("#")}
    problems = [f"{name} is not excluded from the build context" for name in (".git", ".venv", "var", ".cache")
                if name not in patterns]
    needed = ["pyproject.toml", "requirements.lock", "README.md", *project_packages()]
    problems += [f"{name} is excluded, but the image build needs it" for name in needed if name in patterns]
    return problems
