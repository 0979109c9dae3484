"""Delivery statistics: the funnel, latency distributions and usage by pricing category, per tenant and day."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from schemas import from_millis

__all__ = ["LATENCY_BUCKETS_MS", "DeliveryStatsProjection", "funnel_key", "latency_key", "rates", "usage_key"]

# Upper bounds of the latency histogram buckets, in milliseconds (the last bucket is open-ended).
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 3_600_000)
# The funnel's stages, each counted once per message, when the message first reaches it.
_STAGE_OF = {"MessageRequested": "requested", "MessageSuppressed": "suppressed", "MessageDeferred": "deferred",
             "MessageAcceptedByProvider": "accepted", "MessageSent": "sent", "MessageDelivered": "delivered",
             "MessageRead": "read", "MessageFailed": "failed", "MessageFallbackTriggered": "fell_back",
             "MessageDeadLettered": "dead_lettered", "MessageExpired": "expired"}
# Latencies measured between the first time a message reached each pair of stages.
_SPANS = (("requested", "accepted"), ("accepted", "delivered"), ("delivered", "read"))
Lookup = Callable[[str], Any]


def funnel_key(tenant: str, day: str, template: str) -> str:
    return f"funnel:{tenant}:{day}:{template}"


def latency_key(tenant: str, day: str) -> str:
    return f"latency:{tenant}:{day}"


def usage_key(tenant: str, day: str) -> str:
    return f"usage:{tenant}:{day}"


class DeliveryStatsProjection:
    """Folds sb.events.message into counters; a small per-message row makes every count happen exactly once."""

    name = "delivery-stats"
    topic = "sb.events.message"
    # The only fields apply reads: a replay decodes these and skips the rest (see Codec.projected).
    reads = ("envelope.aggregate_id", "envelope.aggregate_version", "envelope.occurred_at", "envelope.tenant_id",
             "template_name", "channel", "provider_at", "pricing")

    def apply(self, lookup: Lookup, event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        envelope = payload["envelope"]
        key = f"stat:{envelope['aggregate_id']}"
        seen = lookup(key) or {"version": 0, "stages": {}, "tenant": envelope["tenant_id"], "template": "-",
                               "day": None, "channel": None, "billed": False}
        if envelope["aggregate_version"] <= seen["version"]:
            return {}
        seen = {**seen, "version": envelope["aggregate_version"], "stages": dict(seen["stages"])}
        changes: dict[str, Any] = {}
        _remember(seen, event_type, payload)
        stage = _STAGE_OF.get(event_type)
        if stage is not None and stage not in seen["stages"]:
            provider_at = payload.get("provider_at")  # a datetime, or the wire's milliseconds
            seen["stages"][stage] = _millis(provider_at if provider_at is not None else envelope["occurred_at"])
            self._count(lookup, changes, seen, stage)
            self._latency(lookup, changes, seen, stage)
        self._usage(lookup, changes, seen, event_type, payload)
        changes[key] = seen
        return changes

    @staticmethod
    def _count(lookup: Lookup, changes: dict[str, Any], seen: dict[str, Any], stage: str) -> None:
        key = funnel_key(seen["tenant"], seen["day"], seen["template"])
        row = changes.get(key) or lookup(key) or {"total": {}, "by_channel": {}}
        row = {"total": {**row["total"], stage: row["total"].get(stage, 0) + 1}, "by_channel": dict(row["by_channel"])}
        channel = seen["channel"] or "-"
        per_channel = dict(row["by_channel"].get(channel, {}))
        per_channel[stage] = per_channel.get(stage, 0) + 1
        row["by_channel"][channel] = per_channel
        changes[key] = row

    @staticmethod
    def _latency(lookup: Lookup, changes: dict[str, Any], seen: dict[str, Any], stage: str) -> None:
        for start, end in _SPANS:
            if end == stage and start in seen["stages"]:
                key = latency_key(seen["tenant"], seen["day"])
                row = changes.get(key) or lookup(key) or {}
                span = f"{start}_to_{end}"
                counts = list(row.get(span, [0] * (len(LATENCY_BUCKETS_MS) + 1)))
                counts[bisect.bisect_left(LATENCY_BUCKETS_MS, seen["stages"][end] - seen["stages"][start])] += 1
                changes[key] = {**row, span: counts}

    @staticmethod
    def _usage(lookup: Lookup, changes: dict[str, Any], seen: dict[str, Any], event_type: str,
               payload: Mapping[str, Any]) -> None:
        pricing = payload.get("pricing") or {}
        if seen["billed"] or not pricing.get("billable") or event_type not in ("MessageSent", "MessageDelivered"):
            return
        seen["billed"] = True  # a conversation is billed once, whichever receipt says so first
        key = usage_key(seen["tenant"], seen["day"])
        row = changes.get(key) or lookup(key) or {}
        category = str(pricing.get("category") or "unknown")
        changes[key] = {**row, category: row.get(category, 0) + 1}


def _remember(seen: dict[str, Any], event_type: str, payload: Mapping[str, Any]) -> None:
    if event_type == "MessageRequested":
        seen["template"] = payload.get("template_name") or "-"
        seen["day"] = _day(payload["envelope"]["occurred_at"])
    elif event_type == "MessageRouted":
        seen["channel"] = payload.get("channel")
    if seen["day"] is None:  # events before the request (should not happen): counted on their own day
        seen["day"] = _day(payload["envelope"]["occurred_at"])


def _millis(value: Any) -> int:
    """Milliseconds as `int(datetime.timestamp() * 1000)` gives them (float rounding included: rows stay the same
    whether the event was decoded with datetimes or with the wire's milliseconds)."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int):
        return int(value * 1000 / 1_000_000 * 1000)  # timestamp() is microseconds / 10**6, a float
    return int(value)


def _day(value: Any) -> str:
    if isinstance(value, int):
        value = from_millis(value)
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def rates(funnel: Mapping[str, int]) -> dict[str, float]:
    """The conversion rates a funnel row stands for (delivered/sent, read/delivered...)."""
    def ratio(a: str, b: str) -> float:
        return round(funnel.get(a, 0) / funnel[b], 4) if funnel.get(b) else 0.0

    return {"sent_of_requested": ratio("sent", "requested"), "delivered_of_sent": ratio("delivered", "sent"),
            "read_of_delivered": ratio("read", "delivered"), "failed_of_requested": ratio("failed", "requested"),
            "suppressed_of_requested": ratio("suppressed", "requested")}
