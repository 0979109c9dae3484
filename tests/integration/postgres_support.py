"""The project's PostgreSQL for a test run (port 25432), a fresh database per test, and synthetic message events."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from schemas import default_registry, encode, make_envelope
from schemas._samples import sample
from switchboard.localpg import DSN_ENV, check_reachable, local_postgres
from tests.ports import shifted

TEST_PORT = shifted(25432)  # apart from the local default 15432; below the ephemeral range
TENANT = "acme"


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """SWITCHBOARD_POSTGRES_DSN if set (checked), else the project's own server, started fresh for this run."""
    from tests.integration.conftest import _announce  # here: conftest imports this module for its fixtures

    external = os.environ.get(DSN_ENV)
    if external:
        check_reachable(external)
        _announce(request, f"PostgreSQL tests use {DSN_ENV}")
        yield external
        return
    server = local_postgres("test", port=TEST_PORT)
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)
    server.start()
    _announce(request, f"PostgreSQL tests use the project's local server at {server.dsn()}, data in {server.data}")
    try:
        yield server.dsn()
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """The DSN of a database of its own for one test (projection tables have fixed names), dropped afterwards."""
    name = f"it_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield psycopg.conninfo.make_conninfo(postgres_dsn, dbname=name)
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def message_events(messages: int, contacts: int = 97) -> list[tuple[str, bytes]]:
    """(contact id, encoded event) of `messages` messages, interleaved so each partition mixes many messages,
    each message's events in order; every seventh message repeats an event (a redelivery) as the pipeline may."""
    histories = [_history(index, contacts) for index in range(messages)]
    longest = max(map(len, histories))
    return [history[step] for step in range(longest) for history in histories if step < len(history)]


def _history(index: int, contacts: int) -> list[tuple[str, bytes]]:
    message, contact = f"msg-{index:05d}", f"contact-{index % contacts:03d}"
    start = datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(seconds=index)
    steps = _steps(index)
    events = [(contact, _event(kind, message, version, contact, start + timedelta(seconds=version), fields))
              for version, (kind, fields) in enumerate(steps, start=1)]
    if index % 7 == 0:
        events.insert(2, events[1])
    return events


def _steps(index: int) -> list[tuple[str, dict[str, Any]]]:
    requested = {"category": "utility", "template_name": "order_shipped", "idempotency_key": f"k{index}"}
    head: list[tuple[str, dict[str, Any]]] = [
        ("MessageRequested", requested),
        ("MessageRendered", {"body": "Your order has shipped"}),
        ("MessageRouted", {"channel": "whatsapp", "sender": "wa-main", "address": "+4917000000000"}),
        ("MessageDispatchAttempted", {"attempt": 1, "channel": "whatsapp", "sender": "wa-main"})]
    receipt = {"provider_message_id": f"wamid.{index}"}
    variant = index % 4
    if variant == 0:
        return [*head, ("MessageAcceptedByProvider", {"attempt": 1, **receipt}), ("MessageSent", receipt),
                ("MessageDelivered", receipt), ("MessageRead", receipt)]
    if variant == 1:
        failure = {"attempt": 1, "provider_code": "131048", "failure_class": "throttled", "detail": "rate limited"}
        return [*head, ("MessageFailed", failure), ("MessageRetryScheduled", {"attempt": 2}),
                ("MessageDispatchAttempted", {"attempt": 2, "channel": "whatsapp", "sender": "wa-main"}),
                ("MessageAcceptedByProvider", {"attempt": 2, **receipt}), ("MessageDelivered", receipt)]
    if variant == 2:
        failure = {"attempt": 1, "provider_code": "131026", "failure_class": "permanent", "detail": "not on WhatsApp"}
        return [*head, ("MessageFailed", failure),
                ("MessageFallbackTriggered", {"from_channel": "whatsapp", "to_channel": "sms", "reason": "gone"}),
                ("MessageRouted", {"channel": "sms", "sender": "sms-main", "address": "+4917000000000"}),
                ("MessageDispatchAttempted", {"attempt": 1, "channel": "sms", "sender": "sms-main"}),
                ("MessageAcceptedByProvider", {"attempt": 1, **receipt}), ("MessageSent", receipt)]
    return [head[0], ("MessageSuppressed", {"reason": "no_consent", "detail": "marketing not granted"})]


def _event(event_type: str, message: str, version: int, contact: str, at: datetime,
           fields: dict[str, Any]) -> bytes:
    payload = {**_blank(event_type)}  # only top-level fields change, so a shallow copy keeps the template intact
    payload.update(fields, contact_id=contact, envelope=make_envelope(
        aggregate_type="Message", aggregate_id=message, aggregate_version=version, occurred_at=at, tenant_id=TENANT))
    for name in ("provider_at", "retry_at"):
        if name in payload:
            payload[name] = at
    return encode(payload, event_type)


@functools.cache
def _blank(event_type: str) -> dict[str, Any]:
    """Every optional field null, every other one a sample value, overwritten by the history's fields."""
    return dict(sample(default_registry().latest(event_type).expanded, nulls=True))
