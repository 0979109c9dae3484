#!/usr/bin/env python
"""Container health checks of the Switchboard services, baked into the image as `switchboard-healthcheck`.

    switchboard-healthcheck http URL                     URL answers 2xx (a pipeline worker's /readyz)
    switchboard-healthcheck answers URL                  URL gives any HTTP answer below 500 (receiver, ingest)
    switchboard-healthcheck group GROUP --bootstrap B    this container is a member of consumer group GROUP
    switchboard-healthcheck store DIR                    the service (PID 1) holds a RocksDB store under DIR open

Exit status 0 when healthy, 1 when not, with one line on stderr saying why (`docker inspect` shows it).
docker/compose.yaml uses it; tests/unit/test_docker_healthcheck.py tests it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path


class Unhealthy(Exception):
    """The check failed; the message says why."""


def check_http(url: str, *, timeout: float, accept_below: int = 300) -> str:
    """The URL answers with a status below `accept_below` (and at least 200)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        raise Unhealthy(f"{url}: {getattr(error, 'reason', error)}") from None
    if not 200 <= status < accept_below:
        raise Unhealthy(f"{url}: HTTP {status}")
    return f"{url}: HTTP {status}"


def own_addresses(hostname: str | None = None) -> set[str]:
    """This container's IP addresses (Docker maps the container's hostname to them in /etc/hosts)."""
    name = hostname or socket.gethostname()
    try:
        return set(socket.gethostbyname_ex(name)[2])
    except OSError:
        return set()


def member_hosts(description: dict[str, object]) -> set[str]:
    """The client hosts of a described group's members (Kafka writes them as "/10.0.0.7")."""
    members = description.get("members") or []
    assert isinstance(members, list)
    return {str(member.get("client_host", "")).lstrip("/") for member in members if isinstance(member, dict)}


async def describe_group(bootstrap: str, group: str, timeout: float) -> dict[str, object]:
    """The group as its coordinator describes it (state, members with their client hosts)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    description: dict[str, object] = response.to_object()["groups"][0]
    return description


Describe = Callable[[str, str, float], Awaitable[dict[str, object]]]


def check_group(group: str, bootstrap: str, *, timeout: float, addresses: Iterable[str] | None = None,
                describe: Describe = describe_group) -> str:
    """This container (by its addresses) is one of the group's members."""
    mine = set(addresses if addresses is not None else own_addresses())
    if not mine:
        raise Unhealthy("cannot tell this container's address")
    async def ask() -> dict[str, object]:
        return await asyncio.wait_for(describe(bootstrap, group, timeout), timeout)

    try:
        description = asyncio.run(ask())
    except Exception as error:  # any failure to ask is a failed check, said in one line
        raise Unhealthy(f"group {group}: cannot describe it at {bootstrap}: {type(error).__name__}: {error}") from None
    hosts = member_hosts(description)
    if not mine & hosts:
        raise Unhealthy(f"group {group} ({description.get('state')}): this container {sorted(mine)} is not among "
                        f"its members {sorted(hosts)}")
    return f"group {group} ({description.get('state')}): member from {sorted(mine & hosts)}"


def open_files(pid: int = 1, proc: Path = Path("/proc")) -> list[str]:
    """Paths of the files the process has open (readable for a process of the same user)."""
    found = []
    fd_dir = proc / str(pid) / "fd"
    try:
        entries = list(fd_dir.iterdir())
    except OSError as error:
        raise Unhealthy(f"cannot list {fd_dir}: {error.strerror}") from None
    for entry in entries:
        try:
            found.append(os.readlink(entry))
        except OSError:
            continue  # closed meanwhile
    return found


def check_store(directory: str, files: Sequence[str] | None = None) -> str:
    """The service holds a RocksDB store under `directory` open: RocksDB keeps its LOCK file open while it runs."""
    root = os.path.normpath(directory)
    held = [path for path in (open_files() if files is None else files)
            if path.endswith("/LOCK") and os.path.normpath(path).startswith(root + os.sep)]
    if not held:
        raise Unhealthy(f"no store under {root} is open")
    return f"store open: {held[0]}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard-healthcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for the check (default 5)")
    checks = parser.add_subparsers(dest="check", required=True)
    checks.add_parser("http", help="the URL answers 2xx").add_argument("url")
    checks.add_parser("answers", help="the URL answers below 500").add_argument("url")
    group = checks.add_parser("group", help="this container is a member of the consumer group")
    group.add_argument("group")
    group.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    checks.add_parser("store", help="PID 1 holds a RocksDB store under DIR open").add_argument("directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.check == "http":
            said = check_http(args.url, timeout=args.timeout)
        elif args.check == "answers":
            said = check_http(args.url, timeout=args.timeout, accept_below=500)
        elif args.check == "group":
            said = check_group(args.group, args.bootstrap, timeout=args.timeout)
        else:
            said = check_store(args.directory)
    except Unhealthy as failure:
        print(f"unhealthy: {failure}", file=sys.stderr)
        return 1
    print(f"healthy: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
