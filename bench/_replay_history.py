"""A synthetic but realistic message history for the replay benchmark, encoded with the real codec."""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregates import Contact, Message
from schemas import default_registry, encode, make_envelope
from schemas._samples import sample

__all__ = ["LIFECYCLES", "history"]

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
RATE = 5  # messages requested per second of the history's time: about 3.5 hours for 500,000 events
TENANTS = ("acme", "globex", "initech")
TEMPLATES = (("order_shipped", "utility"), ("otp", "authentication"), ("spring_sale", "marketing"),
             ("payment_failed", "utility"))
Step = tuple[str, float, dict[str, Any]]  # event type, seconds after the request, fields
# Lifecycles and how often each happens (weights out of 100).
LIFECYCLES: dict[str, int] = {"read": 52, "delivered": 15, "retried": 8, "fell_back": 5, "deferred": 5,
                              "suppressed": 4, "dead_lettered": 3, "expired": 2, "failed_after_sent": 3,
                              "sent_only": 3}
REDELIVERY_EVERY = 50  # one message in 50 has an event written twice, as the pipeline may after a rebalance


def history(events: int, contacts: int, seed: int = 7) -> Iterator[tuple[str, bytes]]:
    """(contact id, encoded event), about `events` of them, every lifecycle complete, in time order as written.

    Messages are requested at RATE per second; each event waits in a heap until the requests have moved past its
    time, so early steps of many messages interleave and late receipts (reads, expiries) come much later.
    """
    rng = random.Random(seed)
    waiting: list[tuple[datetime, int, str, bytes]] = []
    made, index, order = 0, 0, 0
    while made + len(waiting) < events:  # then no more requests: the receipts still due follow in time order
        now = T0 + timedelta(seconds=index / RATE)
        while waiting and waiting[0][0] <= now:
            yield heapq.heappop(waiting)[2:]
            made += 1
        for at, key, value in _message(rng, index, now, contacts):
            heapq.heappush(waiting, (at, order, key, value))
            order += 1
        index += 1
    while waiting:
        yield heapq.heappop(waiting)[2:]


def _message(rng: random.Random, index: int, requested_at: datetime,
             contacts: int) -> list[tuple[datetime, str, bytes]]:
    """One message's events with their times, in version order (times only grow along a message)."""
    tenant = TENANTS[index % len(TENANTS)]
    ref = f"customer-{rng.randrange(contacts)}"
    contact, message = str(Contact.create_id(tenant, ref)), str(Message.create_id(tenant, f"bench-{index}"))
    lifecycle = rng.choices(list(LIFECYCLES), weights=list(LIFECYCLES.values()))[0]
    encoded, latest = [], requested_at
    for version, (kind, seconds, fields) in enumerate(_steps(rng, lifecycle, index), start=1):
        latest = max(latest, requested_at + timedelta(seconds=seconds))
        encoded.append((latest, contact, _event(kind, message, version, contact, tenant, latest, fields)))
    if index % REDELIVERY_EVERY == 0:
        repeated = rng.randrange(len(encoded))
        encoded.insert(repeated + 1, encoded[repeated])
    return encoded


def _steps(rng: random.Random, lifecycle: str, index: int) -> list[Step]:
    template, category = TEMPLATES[index % len(TEMPLATES)]
    requested: Step = ("MessageRequested", 0.0, {"category": category, "template_name": template,
                                                  "idempotency_key": f"bench-{index}",
                                                  "parameters": {"order_id": f"o-{index}"}})
    if lifecycle == "suppressed":
        return [requested, ("MessageSuppressed", 0.001, {"reason": "no_consent", "detail": "marketing not granted"})]
    start: list[Step] = [requested]
    if lifecycle == "deferred":
        start.append(("MessageDeferred", 0.001, {"reason": "quiet_hours", "detail": "22:00-08:00"}))
    at = 0.0 if lifecycle != "deferred" else rng.uniform(600, 36_000)
    return start + _dispatch(rng, lifecycle, index, at)


def _dispatch(rng: random.Random, lifecycle: str, index: int, at: float) -> list[Step]:
    steps = _attempt(at, "whatsapp", 1)
    accepted = at + rng.uniform(0.1, 1.5)
    if lifecycle in ("retried", "dead_lettered"):
        for attempt in range(1, 4 if lifecycle == "dead_lettered" else 2):
            steps += _failure(accepted, attempt, "throttled", "131048", "rate limited")
            steps.append(("MessageRetryScheduled", accepted + 0.001, {"attempt": attempt + 1,
                                                                      "failure_class": "throttled"}))
            accepted += rng.uniform(2, 30)
            steps += _attempt(accepted, "whatsapp", attempt + 1)[2:]
        if lifecycle == "dead_lettered":
            return [*steps[:-2], ("MessageDeadLettered", accepted, {"reason": "retries exhausted", "attempts": 3,
                                                                    "last_failure_class": "throttled"})]
        accepted += rng.uniform(0.1, 1.5)
        return steps + _receipts(rng, accepted, f"wamid.{index}", 2, ("sent", "delivered"))
    if lifecycle == "fell_back":
        steps += _failure(accepted, 1, "permanent", "131026", "not on WhatsApp")
        steps.append(("MessageFallbackTriggered", accepted + 0.001, {"from_channel": "whatsapp", "to_channel": "sms",
                                                                    "reason": "permanent_failure: 131026"}))
        steps += _attempt(accepted + 0.002, "sms", 2)
        return steps + _receipts(rng, accepted + rng.uniform(0.2, 2), f"sms-{index}", 2, ("sent",))
    receipts = {"read": ("sent", "delivered", "read"), "delivered": ("sent", "delivered"),
                "deferred": ("sent", "delivered"), "sent_only": ("sent",), "failed_after_sent": ("sent", "failed"),
                "expired": ("expired",)}[lifecycle]
    return steps + _receipts(rng, accepted, f"wamid.{index}", 1, receipts)


def _attempt(at: float, channel: str, attempt: int) -> list[Step]:
    sender = "wa-main" if channel == "whatsapp" else "sms-main"
    return [("MessageRendered", at + 0.002, {"body": "Your order o-1 has shipped"}),
            ("MessageRouted", at + 0.003, {"channel": channel, "sender": sender, "address": "+4917000000000"}),
            ("MessageDispatchAttempted", at + 0.004, {"attempt": attempt, "channel": channel, "sender": sender})]


def _failure(at: float, attempt: int, failure_class: str, code: str, detail: str) -> list[Step]:
    return [("MessageFailed", at, {"attempt": attempt, "provider_code": code, "failure_class": failure_class,
                                   "detail": detail})]


def _receipts(rng: random.Random, accepted: float, provider_id: str, attempt: int,
              receipts: tuple[str, ...]) -> list[Step]:
    steps: list[Step] = [("MessageAcceptedByProvider", accepted, {"attempt": attempt,
                                                                   "provider_message_id": provider_id})]
    if receipts == ("expired",):
        return [*steps, ("MessageExpired", accepted + 86_400, {"reason": "no receipt within 24 h"})]
    pricing = {"model": "PMP", "category": "utility", "billable": True}
    at = accepted
    for receipt in receipts:
        at += {"sent": rng.uniform(0.5, 3), "delivered": rng.uniform(1, 20), "read": rng.uniform(30, 7200),
               "failed": rng.uniform(1, 60)}[receipt]
        if receipt == "failed":
            steps += _failure(at, attempt, "permanent", "131049", "not delivered to maintain ecosystem health")
        else:
            fields = {"provider_message_id": provider_id, "pricing": pricing if receipt != "read" else None}
            steps.append((f"Message{receipt.capitalize()}", at, fields))
    return steps


def _event(event_type: str, message: str, version: int, contact: str, tenant: str, at: datetime,
           fields: dict[str, Any]) -> bytes:
    payload = {**_blank(event_type), **fields, "contact_id": contact}
    payload["envelope"] = make_envelope(aggregate_type="Message", aggregate_id=message, aggregate_version=version,
                                        occurred_at=at, tenant_id=tenant)
    for name in ("provider_at", "retry_at", "until"):
        if name in payload:
            payload[name] = at
    return encode(payload, event_type)


@functools.cache
def _blank(event_type: str) -> dict[str, Any]:
    """Every optional field null, every other one a sample value, overwritten by the step's fields."""
    return dict(sample(default_registry().latest(event_type).expanded, nulls=True))
