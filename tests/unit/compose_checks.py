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
DR_KAFKA_SERVICE = re.compile(r"dr-kafka-\d+")
SWITCHBOARD_IMAGE = "switchboard:"
# Every part of the platform runs as its own service (issue 7): these roles (`switchboard run --role`) or
# subcommands must each have one.
REQUIRED_PARTS = ("pipeline", "receiver", "normaliser", "callbacks", "ingest", "projections", "api")
PIPELINE_WORKERS = 2
# Options whose value is a local state directory (RocksDB): it must be on a named volume of its own.
STATE_OPTIONS = ("--data-dir", "--root", "--state-dir")
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


# Values that look like credentials whatever their key: provider tokens, private keys, long random strings.
SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY|\bEAA[A-Za-z0-9]{20,}|\b(?:sk|rk|pk)_live_[A-Za-z0-9]{10,}"
                          r"|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b")
SECRET_OPTION = re.compile(r"^--(?![\w-]*-(?:dir|file|path)$)[\w-]*(?:token|secret|passw|key|credential)[\w-]*$",
                           re.IGNORECASE)


def looks_like_secret(value: str) -> bool:
    """A known credential format, or a random-looking token: 32+ characters mixing upper case, lower case and digits
    (paths, host names and settings split into shorter words)."""
    if SECRET_VALUE.search(value):
        return True
    return any(len(token) >= 32 and re.search(r"[a-z]", token) and re.search(r"[A-Z]", token)
               and re.search(r"\d", token) for token in re.split(r"[^A-Za-z0-9+_=-]+", value))


def secret_looking_values(raw_compose: Compose) -> list[str]:
    """Any string in the compose file that looks like a credential, and any command option named like a secret
    that is given a value (secrets come from env files and Docker secrets, never from commands)."""
    problems = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")
        elif isinstance(node, str) and looks_like_secret(node):
            problems.append(f"{where}: {node[:12]}... looks like a secret")

    walk(raw_compose, "")
    for name, service in services(raw_compose).items():
        command = service.get("command")
        parts = [str(part) for part in command] if isinstance(command, list) else str(command or "").split()
        for index, part in enumerate(parts):
            option, _, inline = part.partition("=")
            if SECRET_OPTION.match(option) and (inline or index + 1 < len(parts)):
                problems.append(f"{name}: command option {option} carries a value; read it from the environment")
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


def kafka_problems(compose: Compose, kafka_version: str, pattern: re.Pattern[str] = KAFKA_SERVICE) -> list[str]:
    """A three-node KRaft cluster of combined nodes with a complete quorum, RF 3 and min ISR 2."""
    nodes = {name: svc for name, svc in services(compose).items() if pattern.fullmatch(name)}
    if len(nodes) != 3:
        return [f"expected 3 Kafka services {pattern.pattern}, found {sorted(nodes)}"]
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


def bootstrap_of(compose: Compose, pattern: re.Pattern[str]) -> set[str]:
    """host:port of the inter-broker listener of every node whose service name matches `pattern`."""
    found = set()
    for name, service in services(compose).items():
        if pattern.fullmatch(name):
            env = environment(service)
            listener = env.get("KAFKA_INTER_BROKER_LISTENER_NAME") or "PLAINTEXT"
            found.add(f"{name}:{listener_ports(env.get('KAFKA_LISTENERS') or '').get(listener)}")
    return found


def dr_problems(compose: Compose, base: Path, kafka_version: str) -> list[str]:
    """The `dr` profile: a second three-node cluster with its own cluster id and quorum, and MirrorMaker 2 reading
    docker/mirrormaker/mm2.properties, whose cluster aliases point at the two clusters."""
    from tests.unit import monitoring_checks as mc

    problems = kafka_problems(compose, kafka_version, DR_KAFKA_SERVICE)
    primary_ids = {environment(svc).get("CLUSTER_ID") for svc in kafka_services(compose).values()}
    dr_nodes = {name: svc for name, svc in services(compose).items() if DR_KAFKA_SERVICE.fullmatch(name)}
    if primary_ids & {environment(svc).get("CLUSTER_ID") for svc in dr_nodes.values()}:
        problems.append("the DR cluster has the primary's cluster id")
    mirror = {name: svc for name, svc in services(compose).items()
              if "connect-mirror-maker.sh" in " ".join(map(str, svc.get("command") or []))}
    if len(mirror) != 1:
        return [*problems, f"expected one MirrorMaker 2 service, found {sorted(mirror)}"]
    [(mirror_name, mirror_service)] = mirror.items()
    for name, service in {**dr_nodes, **mirror}.items():
        if "dr" not in (service.get("profiles") or []):
            problems.append(f"{name}: not in the `dr` profile (a plain `up` would start it)")
    command = [str(part) for part in mirror_service.get("command") or []]
    host_file = _host_path(mirror_service, command[-1] if command else "", base)
    if host_file is None or not host_file.is_file():
        return [*problems, f"{mirror_name}: its properties file {command[-1:]} is not mounted from the repository"]
    properties = mc.load_properties(host_file)
    wanted = {"primary": bootstrap_servers(compose), "dr": bootstrap_of(compose, DR_KAFKA_SERVICE)}
    for alias, nodes in wanted.items():
        found = set((properties.get(f"{alias}.bootstrap.servers") or "").split(","))
        if found != nodes:
            problems.append(f"{host_file.name}: {alias}.bootstrap.servers {sorted(found)} is not {sorted(nodes)}")
    return problems


def edge_problems(compose: Compose, base: Path) -> list[str]:
    """The edge proxy (nginx) sends /webhooks/ to the receivers, /v1/events to ingestion and the reads and console
    to the API, at the ports they listen on, looking the names up at request time (so every replica, and replicas
    added later, get traffic)."""
    edge = services(compose).get("edge")
    if edge is None:
        return ["service 'edge' is missing"]
    config_path = _host_path(edge, "/etc/nginx/nginx.conf", base)
    if config_path is None or not config_path.is_file():
        return ["edge: /etc/nginx/nginx.conf is not mounted from the repository"]
    text = config_path.read_text()
    problems = []
    if not re.search(r"^\s*resolver\s+127\.0\.0\.11\b", text, re.MULTILINE):
        problems.append("edge: no `resolver 127.0.0.11` (Docker's DNS): replicas would be resolved once, at start")
    routes = dict(re.findall(r"location\s+(?:=\s*)?(\S+)\s*\{[^}]*?set\s+\$\w+\s+([\w.-]+:\d+);", text))
    wanted = {"/webhooks/": "receiver", "/v1/events": "ingest", "/v1/messages/": "api", "/v1/recipients/": "api",
              "/v1/stats/": "api", "/console": "api"}
    parser = switchboard_parser()
    for path, part in wanted.items():
        target = routes.get(path)
        if target is None:
            problems.append(f"edge: {path} is not proxied (through a variable) to a service")
            continue
        host, _, port = target.rpartition(":")
        service = services(compose).get(host)
        if service is None or subcommand(service) != part:
            problems.append(f"edge: {path} goes to {host!r}, not to the `switchboard {part}` service")
            continue
        own, _ = parse_command(parser, command_of(service))
        if own is not None and int(port) not in served_ports(own):
            problems.append(f"edge: {path} goes to port {port}, {host} listens on {sorted(served_ports(own))}")
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


def app_services(compose: Compose) -> dict[str, dict[str, Any]]:
    """The services running the Switchboard image: one `switchboard` subcommand each."""
    return {name: service for name, service in services(compose).items()
            if str(service.get("image", "")).startswith(SWITCHBOARD_IMAGE)}


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    return [str(part) for part in command] if isinstance(command, list) else []


def subcommand(service: Mapping[str, Any]) -> str:
    """The part a service runs: the role of `switchboard run --role ROLE`, else the subcommand."""
    command = command_of(service) or [""]
    if command[0] == "run":
        return command_option(command, "--role") or "all"
    return command[0]


def served_ports(own: Any) -> set[int]:
    """The ports a parsed command listens on: --web-port and --port, or `run`'s --<role>-port of its roles."""
    ports = {getattr(own, "web_port", None), getattr(own, "port", None)}
    ports |= {getattr(own, f"{role}_port", None) for role in getattr(own, "roles", None) or []}
    return {int(port) for port in ports if port is not None}


def consumer_group(own: Any) -> str | None:
    """The consumer group a parsed command consumes as: --group, or `run`'s switchboard-<role> (prefixed)."""
    if getattr(own, "group", None):
        return str(own.group)
    roles = getattr(own, "roles", None) or []
    return f"{own.topic_prefix}switchboard-{roles[0]}" if len(roles) == 1 else None


def app_problems(compose: Compose, base: Path) -> list[str]:
    """Every part as its own service, built from docker/Dockerfile, waiting for a healthy Kafka, pointed at all of
    it, its state on a volume of its own; two pipeline workers; the receiver replicated."""
    problems = []
    kafka = set(kafka_services(compose))
    apps = app_services(compose)
    for name, service in apps.items():
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
            continue
        pipeline = environment(service).get("SWITCHBOARD_PIPELINE") or ""
        host_file = _host_path(service, pipeline, base)
        if host_file is None or host_file.name != "pipeline.toml" or not host_file.is_file():
            problems.append(f"{name}: SWITCHBOARD_PIPELINE {pipeline!r} is not the mounted pipeline.toml")
        config = command_option(command_of(service), "--config")
        if config is not None and config != pipeline:
            problems.append(f"{name}: --config {config!r} is not SWITCHBOARD_PIPELINE {pipeline!r}")
        bootstrap = command_option(command_of(service), "--bootstrap")
        if bootstrap is None or set(bootstrap.split(",")) != bootstrap_servers(compose):
            problems.append(f"{name}: --bootstrap {bootstrap!r} is not every Kafka node "
                            f"{sorted(bootstrap_servers(compose))}")
    problems += _state_problems(apps)
    parts = {subcommand(service) for service in apps.values()}
    problems += [f"no service runs `switchboard {part}`" for part in REQUIRED_PARTS if part not in parts]
    workers = {name: service for name, service in apps.items() if subcommand(service) == "pipeline"}
    if len(workers) < PIPELINE_WORKERS:
        problems.append(f"expected {PIPELINE_WORKERS} pipeline worker services, found {sorted(workers)}")
    names = [command_option(command_of(service), "--name") for service in workers.values()]
    if len(set(names)) != len(names):
        problems.append(f"pipeline workers share a --name: {names}")
    problems += _replica_problems(apps)
    return problems


def _state_problems(apps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each state directory on a named volume, and no volume holding the state of two services (RocksDB locks it,
    and a replicated service would share it between its replicas)."""
    problems = []
    owners: dict[str, str] = {}
    for name, service in apps.items():
        for option in STATE_OPTIONS:
            directory = command_option(command_of(service), option)
            if directory is None:
                continue
            volume = next((source for kind, source, target in mounts(service)
                           if kind == "volume" and source and (directory + "/").startswith(target.rstrip("/") + "/")),
                          None)
            if volume is None:
                problems.append(f"{name}: {option} {directory!r} is not on a named volume")
                continue
            if volume in owners:
                problems.append(f"{name}: its state volume {volume!r} is also {owners[volume]}'s")
            owners[volume] = name
            if int((service.get("deploy") or {}).get("replicas", 1)) > 1:
                problems.append(f"{name}: replicated, but its replicas would share the state volume {volume!r}")
    return problems


def _replica_problems(apps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The webhook receiver runs in several replicas, none of which binds a fixed host port (only one could)."""
    problems = []
    receivers = [service for service in apps.values() if subcommand(service) == "receiver"]
    if not any(int((service.get("deploy") or {}).get("replicas", 1)) >= 2 for service in receivers):
        problems.append("the webhook receiver does not run in 2 or more replicas (deploy.replicas)")
    for name, service in apps.items():
        if int((service.get("deploy") or {}).get("replicas", 1)) > 1 and service.get("ports"):
            problems.append(f"{name}: replicated, so it cannot bind host ports {service['ports']}")
    return problems


def switchboard_parser() -> Any:
    """The real `switchboard` argument parser (switchboard.cli), so that compose commands are checked against it."""
    from switchboard import cli

    return cli._parser()


def parse_command(parser: Any, command: list[str]) -> tuple[Any, str]:
    """(namespace, "") when argparse accepts the command, (None, its error message) when it exits."""
    import contextlib
    import io

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(command), ""
    except SystemExit:
        return None, errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "rejected"


def command_problems(compose: Compose) -> list[str]:
    """Every Switchboard service's command is a real `switchboard` subcommand with options it accepts."""
    parser = switchboard_parser()
    problems = []
    for name, service in app_services(compose).items():
        args, error = parse_command(parser, command_of(service))
        if args is None:
            problems.append(f"{name}: `switchboard {' '.join(command_of(service))}`: {error}")
    return problems


def healthcheck_problems(compose: Compose, checker: Any) -> list[str]:
    """Every long-running service has a health check; one-shot services (restart "no") need none. The Switchboard
    services' checks are valid `switchboard-healthcheck` calls (`checker`: docker/healthcheck.py) that probe the
    port, the consumer group or the state directory the service's own command uses."""
    problems = []
    parser = switchboard_parser()
    for name, service in services(compose).items():
        if str(service.get("restart", "no")) == "no":
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if not test or check.get("disable") or test == ["NONE"]:
            problems.append(f"{name}: long-running, but no health check")
            continue
        if name in app_services(compose):
            problems += _app_check_problems(name, service, [str(part) for part in test], parser, checker)
    return problems


def _app_check_problems(name: str, service: Mapping[str, Any], test: list[str], parser: Any,
                        checker: Any) -> list[str]:
    if test[:2] != ["CMD", "switchboard-healthcheck"]:
        return [f"{name}: health check {test} does not run switchboard-healthcheck"]
    args, error = parse_command(checker._parser(), test[2:])
    if args is None:
        return [f"{name}: health check {test}: {error}"]
    own, _ = parse_command(parser, command_of(service))
    if own is None:
        return []  # command_problems reports it
    if args.check in ("http", "answers"):
        port = urllib_port(args.url)
        served = served_ports(own)
        if port not in served:
            return [f"{name}: health check probes port {port}, the service listens on {sorted(served)}"]
        if port not in container_ports(service):
            return [f"{name}: health check probes port {port}, which the service does not expose"]
    elif args.check == "group":
        group = consumer_group(own)
        if args.group != group:
            return [f"{name}: health check watches group {args.group!r}, the service consumes as {group!r}"]
        if set(args.bootstrap.split(",")) != set(str(own.bootstrap).split(",")):
            return [f"{name}: health check asks {args.bootstrap}, the service uses {own.bootstrap}"]
    elif args.check == "store":
        roots = [str(value) for value in (getattr(own, "root", None), getattr(own, "data_dir", None),
                                          getattr(own, "state_dir", None)) if value]
        if not any((args.directory + "/").startswith(root.rstrip("/") + "/") for root in roots):
            return [f"{name}: health check watches {args.directory}, outside the service's state {roots}"]
    return []


def urllib_port(url: str) -> int | None:
    from urllib.parse import urlsplit

    return urlsplit(url).port


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
    problems += [f"prometheus does not scrape {name}" for name in metrics_services(compose) if name not in scraped]
    problems += _rule_and_alerting_problems(compose, config, config_path)
    return problems


# Subcommands whose HTTP port serves /metrics (the others on --web-port when given).
METRICS_PARTS = ("api", "receiver", "ingest")


def metrics_services(compose: Compose) -> list[str]:
    """Switchboard services serving /metrics: every `switchboard run` role, parts started with --web-port, the
    API, the receivers and ingestion."""
    return [name for name, service in app_services(compose).items()
            if command_option(command_of(service), "--web-port") is not None or subcommand(service) in METRICS_PARTS
            or command_of(service)[:1] == ["run"]]


def _rule_and_alerting_problems(compose: Compose, config: Mapping[str, Any], config_path: Path) -> list[str]:
    problems = []
    rule_files = config.get("rule_files") or []
    if not rule_files:
        problems.append("prometheus: no rule_files")
    for rule_file in rule_files:
        if not (config_path.parent / rule_file).is_file():
            problems.append(f"prometheus: rule file {rule_file} is not beside prometheus.yml")
    targets = [target for manager in (config.get("alerting") or {}).get("alertmanagers") or []
               for static in manager.get("static_configs") or [] for target in static.get("targets") or []]
    if not targets:
        problems.append("prometheus: sends alerts to no Alertmanager")
    for target in targets:
        host, _, port = target.rpartition(":")
        service = services(compose).get(host)
        if service is None or int(port) not in container_ports(service):
            problems.append(f"prometheus: Alertmanager target {target} is not a service")
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
