"""Helpers for the pipeline's integration tests: a declaration per test, commands in, events out."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aggregates import Contact
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from switchboard.kafka_io import collect, produce_json
from switchboard.workers import WorkerProcess

TENANT = "acme"
# Message events after which our pipeline is done with a message (receipts may still follow an acceptance).
TERMINAL = frozenset({"MessageAcceptedByProvider", "MessageSuppressed", "MessageExpired", "MessageDeadLettered"})

BASE_PIPELINE = """
[streams]
partitions = {partitions}

[[tenants]]
id = "acme"
name = "Acme"
timezone = "UTC"

[[channels]]
id = "whatsapp"
kind = "whatsapp"
tenant = "acme"
provider = "meta"
driver = "{driver}"
settings = {{ {settings} }}
[[channels.senders]]
id = "wa-main"
address = "105954558954427"
per_second = {per_second}
burst = {burst}

[[channels]]
id = "sms"
kind = "sms"
tenant = "acme"
provider = "sms-gateway"
driver = "inprocess"
[[channels.senders]]
id = "sms-main"
address = "+4915000000000"
per_second = 1000

[[templates]]
name = "order_shipped"
category = "utility"
parameters = ["order_id"]
text = {{ en = "Your order {{{{ order_id }}}} has shipped." }}

[[templates]]
name = "login_code"
category = "authentication"
parameters = ["code"]
text = {{ en = "Your code is {{{{ code }}}}." }}

[[routes]]
name = "otp"
tenant = "acme"
when = 'message.category == "authentication"'
channel = "whatsapp"
fallback = ["sms"]
retry = "fast"
deadline_seconds = {deadline}

[[routes]]
name = "default"
tenant = "acme"
channel = "whatsapp"
fallback = ["sms"]
retry = "fast"

[retry.default]
max_attempts = 3
base_seconds = 0.2
factor = 2.0
cap_seconds = 1.0

[retry.fast]
max_attempts = {max_attempts}
base_seconds = 0.2
factor = 2.0
cap_seconds = 0.5
{extra}
"""


def write_pipeline(directory: Path, *, partitions: int = 6, driver: str = "inprocess", settings: str = "",
                   per_second: float = 1000, burst: float = 1000, deadline: float = 30, max_attempts: int = 4,
                   extra: str = "") -> Path:
    """A pipeline.toml for one test; `settings` is the inside of the WhatsApp channel's settings table."""
    path = directory / "pipeline.toml"
    path.write_text(BASE_PIPELINE.format(partitions=partitions, driver=driver, settings=settings,
                                         per_second=per_second, burst=burst, deadline=deadline,
                                         max_attempts=max_attempts, extra=extra))
    return path


def contact_id(ref: str) -> str:
    return str(Contact.create_id(TENANT, ref))


_numbers = itertools.count(1)


def request(ref: str, key: str, *, phone: str | None = None, category: str = "utility",
            template: str = "order_shipped", parameters: dict[str, str] | None = None,
            priority: str = "normal") -> tuple[str, dict[str, Any]]:
    """A (key, request command) pair for the commands topic."""
    cid = contact_id(ref)
    phone = phone or f"+49170{next(_numbers):07d}"
    command = {"kind": "request", "v": 1, "command_id": f"req-{key}", "tenant": TENANT, "contact_id": cid,
               "contact": {"external_ref": ref, "addresses": {"whatsapp": phone, "sms": phone}},
               "message": {"idempotency_key": key, "category": category, "template": template,
                           "parameters": parameters if parameters is not None else {"order_id": key},
                           "priority": priority}}
    return cid, command


async def send_commands(bootstrap: str, prefix: str, commands: list[tuple[str, dict[str, Any]]]) -> None:
    await produce_json(bootstrap, Topics(prefix).commands, commands)


def _read_event(raw: bytes) -> tuple[str, dict[str, Any]]:
    decoded = decode(raw)
    assert isinstance(decoded, DecodedEvent), f"unknown event on the message topic: {decoded}"
    return decoded.event_type, decoded.payload


async def message_events(bootstrap: str, prefix: str, done: Callable[[dict[str, list[tuple[str, dict[str, Any]]]]],
                         bool], timeout: float = 90.0) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Message events per message id (duplicates by event id removed) once `done` holds for them."""
    def grouped(values: list[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        per_message: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        seen: set[str] = set()
        for event_type, value in values:
            envelope = value["envelope"]
            if envelope["event_id"] not in seen:
                seen.add(envelope["event_id"])
                per_message[envelope["aggregate_id"]].append((event_type, value))
        return per_message

    values = await collect(bootstrap, Topics(prefix).message_events, lambda v: done(grouped(v)), _read_event, timeout)
    return grouped(values)


def terminal_count(events: list[tuple[str, dict[str, Any]]]) -> int:
    return sum(1 for event_type, _ in events if event_type in TERMINAL)


def types(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [event_type for event_type, _ in events]


async def outcomes(bootstrap: str, prefix: str, done: Callable[[list[dict[str, Any]]], bool],
                   timeout: float = 90.0) -> list[dict[str, Any]]:
    """The dispatcher's outcome commands on the commands topic, once `done` holds for them."""
    def only_outcomes(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if v.get("kind") == "outcome"]

    values = await collect_json_values(bootstrap, Topics(prefix).commands, lambda v: done(only_outcomes(v)), timeout)
    return only_outcomes(values)


async def collect_json_values(bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool],
                              timeout: float = 90.0) -> list[dict[str, Any]]:
    return await collect(bootstrap, topic, done, json.loads, timeout)


def payloads(events: list[tuple[str, dict[str, Any]]], event_type: str) -> list[dict[str, Any]]:
    return [value for kind, value in events if kind == event_type]


def routed_channels(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [value["channel"] for value in payloads(events, "MessageRouted")]


async def until_logged(worker: WorkerProcess[Any], pattern: str, timeout: float = 120) -> None:
    """Until the worker's log matches the pattern; fails with the log's end if the worker exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, worker.log_file.read_text(errors="replace") if worker.log_file.exists() else ""):
        assert worker.is_running(), worker.log_tail()
        assert time.monotonic() < deadline, f"not logged within {timeout:.0f} s: {pattern!r}\n{worker.log_tail()}"
        await asyncio.sleep(0.1)


def gate_refuses(template: str, locale: str = "en") -> str:
    """The worker's WARNING that its template gate refuses the template: in its summary when the review came before
    it had read sb.events.template to its end, else as the review comes."""
    named = re.escape(f"{template} ({locale})")
    return f"not sendable now .*{named}|{named} may not be sent now"
