"""Following the demo's messages: each message's way through the pipeline, folded from sb.events.message."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["FINAL_PHASES", "SPANS", "STAGES", "STALL_SECONDS", "Counts", "MessageView", "Tracker"]

# Phases after which nothing more happens to a message while the demo runs (a deferral waits for the morning).
FINAL_PHASES = frozenset({"suppressed", "deferred", "dead_lettered", "expired"})
# A deferral that ends sooner than this is waited for rather than reported.
DEFERRAL_WORTH_REPORTING = 120.0
# No message event for this long while messages are not final, everything sent: the run is reported as stalled.
STALL_SECONDS = 120.0
# The funnel's stages, each counted once per message when first reached, on the channel it was routed to then:
# the same rules as the delivery-stats projection, so the demo's own count can be checked against the API's.
STAGES = {"MessageRequested": "requested", "MessageSuppressed": "suppressed", "MessageDeferred": "deferred",
          "MessageAcceptedByProvider": "accepted", "MessageSent": "sent", "MessageDelivered": "delivered",
          "MessageRead": "read", "MessageFailed": "failed", "MessageFallbackTriggered": "fell_back",
          "MessageDeadLettered": "dead_lettered", "MessageExpired": "expired"}
SPANS = (("requested", "accepted"), ("accepted", "delivered"), ("delivered", "read"))


@dataclass
class MessageView:
    """What the events of one message say so far."""

    message_id: str
    contact_id: str = ""
    requested: bool = False
    template: str | None = None  # as requested
    sent_template: str | None = None  # as rendered: a route arm may swap it (gradual roll-out)
    path: list[str] = field(default_factory=list)  # channels in the order they were used
    phase: str = "unknown"  # requested, routed, dispatching, accepted, or one of FINAL_PHASES
    detail: str = ""  # why it was suppressed, until when deferred, why dead-lettered
    deferred_until: datetime | None = None
    accepted_on: str | None = None  # the channel that took it (None again after a fallback)
    attempts: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)  # provider codes of failed attempts and failed receipts
    fallbacks: list[str] = field(default_factory=list)  # the reasons
    delivered: bool = False
    read: bool = False
    sender: str | None = None  # the sender account of the last routing
    routed_channel: str = "-"  # the channel of the last MessageRouted (what the stages are counted on)
    stages: dict[str, tuple[str, float]] = field(default_factory=dict)  # stage -> (channel, epoch s) when first reached

    @property
    def channel(self) -> str | None:
        return self.path[-1] if self.path else None

    def apply(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Folds one event in; unknown types change nothing."""
        handler = _HANDLERS.get(event_type)
        if handler is not None:
            handler(self, payload)
        stage = STAGES.get(event_type)
        if stage is not None and stage not in self.stages:
            self.stages[stage] = (self.routed_channel, _seconds(payload.get("provider_at") or
                                                                payload["envelope"].get("occurred_at")))
        self.contact_id = self.contact_id or str(payload.get("contact_id", ""))

    def is_final(self, receipts: Mapping[str, frozenset[str]], now: float) -> bool:
        """Final: suppressed, deferred (for a while), dead-lettered, expired; or accepted and as far as the channel's
        receipts go (read and delivered on WhatsApp; accepted where the channel sends no receipts)."""
        if self.phase == "deferred":
            return self.deferred_until is None or self.deferred_until.timestamp() - now > DEFERRAL_WORTH_REPORTING
        if self.phase in FINAL_PHASES:
            return True
        if self.phase != "accepted" or self.accepted_on is None:
            return False
        statuses = receipts.get(self.accepted_on, frozenset())
        if "read" in statuses:
            return self.read and (self.delivered or "delivered" not in statuses)
        return self.delivered or "delivered" not in statuses


def _requested(view: MessageView, p: Mapping[str, Any]) -> None:
    view.requested, view.template, view.phase = True, p.get("template_name"), "requested"


def _rendered(view: MessageView, p: Mapping[str, Any]) -> None:
    body = str(p.get("body", ""))  # `template order_shipped_v2[en](order_id=...)`
    if body.startswith("template ") and "[" in body:
        view.sent_template = body.removeprefix("template ").split("[", 1)[0]


def _routed(view: MessageView, p: Mapping[str, Any]) -> None:
    channel = str(p["channel"])
    if view.channel != channel:
        view.path.append(channel)
    view.phase, view.routed_channel = "routed", channel
    view.sender = str(p["sender"]) if p.get("sender") else view.sender


def _fell_back(view: MessageView, p: Mapping[str, Any]) -> None:
    view.fallbacks.append(str(p.get("reason", "")))
    view.accepted_on = None
    if view.channel != str(p["to_channel"]):
        view.path.append(str(p["to_channel"]))


def _attempted(view: MessageView, p: Mapping[str, Any]) -> None:
    view.attempts, view.phase = view.attempts + 1, "dispatching"


def _failed(view: MessageView, p: Mapping[str, Any]) -> None:
    view.failures.append(str(p.get("provider_code") or p.get("failure_class") or "failed"))


def _retry(view: MessageView, p: Mapping[str, Any]) -> None:
    view.retries += 1


def _accepted(view: MessageView, p: Mapping[str, Any]) -> None:
    view.phase, view.accepted_on = "accepted", view.channel


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) / 1000 if isinstance(value, int | float) else 0.0


def _delivered(view: MessageView, p: Mapping[str, Any]) -> None:
    view.delivered = True


def _read(view: MessageView, p: Mapping[str, Any]) -> None:
    view.read = True


def _closed(phase: str) -> Callable[[MessageView, Mapping[str, Any]], None]:
    def close(view: MessageView, p: Mapping[str, Any]) -> None:
        view.phase = phase
        view.detail = " ".join(str(p[k]) for k in ("reason", "detail") if p.get(k)) or view.detail
        if phase == "deferred":
            until = p.get("until")
            view.deferred_until = until if isinstance(until, datetime) else None
    return close


_HANDLERS: dict[str, Callable[[MessageView, Mapping[str, Any]], None]] = {
    "MessageRequested": _requested, "MessageRendered": _rendered, "MessageRouted": _routed,
    "MessageFallbackTriggered": _fell_back, "MessageDispatchAttempted": _attempted, "MessageFailed": _failed,
    "MessageRetryScheduled": _retry, "MessageAcceptedByProvider": _accepted, "MessageDelivered": _delivered,
    "MessageRead": _read, "MessageSuppressed": _closed("suppressed"), "MessageDeferred": _closed("deferred"),
    "MessageDeadLettered": _closed("dead_lettered"), "MessageExpired": _closed("expired"),
}


@dataclass(frozen=True)
class Counts:
    """The funnel: every requested message ends in exactly one of suppressed, deferred, dead-lettered, expired,
    sent (accepted by a provider) or, while the run is still going, in flight."""

    requested: int
    suppressed: int
    deferred: int
    dead_lettered: int
    expired: int
    sent: int
    in_flight: int
    delivered: int
    read: int
    failed: int  # messages with at least one failed attempt or failed receipt (retried or fallen back)
    fallen_back: int
    final: int

    def adds_up(self) -> bool:
        return self.requested == (self.suppressed + self.deferred + self.dead_lettered + self.expired + self.sent +
                                  self.in_flight)


class Tracker:
    """Message views by id, built from decoded message events (each event id applied once)."""

    def __init__(self, expected: Iterable[str], receipts: Mapping[str, frozenset[str]]) -> None:
        self.expected = list(expected)
        self._expected = set(self.expected)  # membership for 10,000s of messages
        self.receipts = receipts
        self.views: dict[str, MessageView] = {mid: MessageView(mid) for mid in self.expected}
        self._seen: set[str] = set()
        self.requested = 0  # messages registered so far (counts() gives it too, but walks every message)

    def apply(self, event_type: str, payload: Mapping[str, Any]) -> None:
        envelope = payload["envelope"]
        if envelope["event_id"] in self._seen:
            return  # a redelivered output of the writer
        self._seen.add(envelope["event_id"])
        message_id = str(envelope["aggregate_id"])
        view = self.views.setdefault(message_id, MessageView(message_id))
        self.requested += event_type == "MessageRequested" and not view.requested
        view.apply(event_type, payload)

    def expect(self, message_id: str) -> None:
        """One more message the run waits for (an answer requested while it plays)."""
        if message_id not in self.views:
            self.views[message_id] = MessageView(message_id)
        self.expected.append(message_id)
        self._expected.add(message_id)

    def funnel(self) -> dict[str, dict[str, dict[str, int]]]:
        """template -> channel -> stage -> messages, as the delivery-stats projection counts them (the template as
        requested, `-` for free text; each stage on the channel the message was routed to when it got there)."""
        table: dict[str, dict[str, dict[str, int]]] = {}
        for view in self.views.values():
            template = view.template or "-"
            for stage, (channel, _) in view.stages.items():
                counts = table.setdefault(template, {}).setdefault(channel, {})
                counts[stage] = counts.get(stage, 0) + 1
        return table

    def latencies(self) -> dict[str, list[float]]:
        """Per span (`requested_to_accepted`...), the milliseconds each message took. A receipt's time is the
        provider's, to the second (WhatsApp's `timestamp`), and an acceptance's is ours, to the millisecond: a
        receipt in the same second can look earlier than its acceptance, so a span is never less than 0, as the
        delivery-stats projection counts it in its first bucket."""
        spans: dict[str, list[float]] = {f"{a}_to_{b}": [] for a, b in SPANS}
        for view in self.views.values():
            for start, end in SPANS:
                if start in view.stages and end in view.stages:
                    spans[f"{start}_to_{end}"].append(max(0.0, 1000 * (view.stages[end][1] - view.stages[start][1])))
        return spans

    def final(self, now: float) -> list[MessageView]:
        return [v for v in self.views.values() if v.is_final(self.receipts, now)]

    def done(self, now: float) -> bool:
        """Every expected message (and any other requested one) has reached a final state."""
        return all(v.is_final(self.receipts, now) for v in self.views.values() if v.requested or
                   v.message_id in self._expected)

    def counts(self, now: float) -> Counts:
        views = [v for v in self.views.values() if v.requested]
        phases = [v.phase for v in views]
        closed = {phase: phases.count(phase) for phase in FINAL_PHASES}
        sent = phases.count("accepted")
        return Counts(
            requested=len(views), suppressed=closed["suppressed"], deferred=closed["deferred"],
            dead_lettered=closed["dead_lettered"], expired=closed["expired"], sent=sent,
            in_flight=len(views) - sum(closed.values()) - sent, delivered=sum(v.delivered for v in views),
            read=sum(v.read for v in views), failed=sum(bool(v.failures) for v in views),
            fallen_back=sum(bool(v.fallbacks) for v in views), final=len(self.final(now)))
