"""Synthetic but well-formed message histories for the projection tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def event(message: str, version: int, event_type: str, seconds: float, **fields: Any) -> tuple[str, dict[str, Any]]:
    envelope = {"event_id": f"{message}:{version}", "aggregate_type": "Message", "aggregate_id": message,
                "aggregate_version": version, "occurred_at": T0 + timedelta(seconds=seconds), "tenant_id": "acme"}
    return event_type, {"envelope": envelope, "contact_id": f"contact-{message}", **fields}


def delivered_and_read(message: str = "m1") -> list[tuple[str, dict[str, Any]]]:
    """Requested, routed to WhatsApp, accepted after 0.3 s, delivered after 2 s, read after a minute."""
    pricing = {"model": "PMP", "category": "utility", "billable": True}
    return [
        event(message, 1, "MessageRequested", 0, category="utility", template_name="order_shipped"),
        event(message, 2, "MessageRendered", 0.01, body="…"),
        event(message, 3, "MessageRouted", 0.02, channel="whatsapp", sender="wa-main"),
        event(message, 4, "MessageDispatchAttempted", 0.03, attempt=1, channel="whatsapp", sender="wa-main"),
        event(message, 5, "MessageAcceptedByProvider", 0.3, attempt=1, provider_message_id="wamid.1"),
        event(message, 6, "MessageSent", 1, provider_message_id="wamid.1", provider_at=T0 + timedelta(seconds=1),
              pricing=pricing),
        event(message, 7, "MessageDelivered", 2, provider_message_id="wamid.1",
              provider_at=T0 + timedelta(seconds=2), pricing=pricing),
        event(message, 8, "MessageRead", 60, provider_message_id="wamid.1", provider_at=T0 + timedelta(seconds=60),
              pricing=None),
    ]


def fell_back(message: str = "m2") -> list[tuple[str, dict[str, Any]]]:
    """WhatsApp fails permanently; SMS takes it."""
    return [
        event(message, 1, "MessageRequested", 0, category="utility", template_name="order_shipped"),
        event(message, 2, "MessageRendered", 0.01, body="…"),
        event(message, 3, "MessageRouted", 0.02, channel="whatsapp", sender="wa-main"),
        event(message, 4, "MessageDispatchAttempted", 0.03, attempt=1),
        event(message, 5, "MessageFailed", 0.1, attempt=1, provider_code="131026", failure_class="permanent",
              detail="undeliverable", provider_at=T0),
        event(message, 6, "MessageFallbackTriggered", 0.11, from_channel="whatsapp", to_channel="sms",
              reason="permanent_failure: 131026"),
        event(message, 7, "MessageRendered", 0.12, body="…"),
        event(message, 8, "MessageRouted", 0.13, channel="sms", sender="sms-main"),
        event(message, 9, "MessageDispatchAttempted", 0.14, attempt=2),
        event(message, 10, "MessageAcceptedByProvider", 0.5, attempt=2, provider_message_id="sms-1"),
    ]
