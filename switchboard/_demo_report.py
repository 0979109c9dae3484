"""What the demo prints: a progress line, the table of messages and the funnel. Pure text, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from connectors import mask_phone
from switchboard._demo_scenario import PlannedMessage
from switchboard._demo_track import Counts, MessageView

__all__ = ["funnel_lines", "progress_line", "status_of", "table_lines"]


def progress_line(elapsed: float, counts: Counts, expected: int) -> str:
    """`[  4s] requested 6/8 · accepted 4 · delivered 3 · read 2 · failed 1 · final 3/8`."""
    return (f"[{elapsed:4.0f}s] requested {counts.requested}/{expected} · accepted {counts.sent} · "
            f"delivered {counts.delivered} · read {counts.read} · failed {counts.failed} · "
            f"final {counts.final}/{max(expected, counts.requested)}")


def status_of(view: MessageView, receipts: Mapping[str, frozenset[str]], zone: str | None = None) -> str:
    """The final (or current) status in words."""
    if view.phase == "suppressed":
        return f"suppressed: {view.detail.split(' ', 1)[0] or 'other'}"
    if view.phase == "deferred":
        if view.deferred_until is None:
            return "deferred"
        local = view.deferred_until.astimezone(ZoneInfo(zone)) if zone else view.deferred_until
        return f"deferred (quiet hours) until {local:%H:%M} {zone or 'UTC'}"
    if view.phase in ("dead_lettered", "expired"):
        return f"{view.phase.replace('_', '-')}: {view.detail}"
    if view.phase == "accepted":
        if view.read:
            return "read" if view.delivered else "read (delivered receipt pending)"
        if view.delivered:
            return "delivered"
        if not receipts.get(view.accepted_on or "", frozenset()):
            return f"sent (the {view.accepted_on} stand-in sends no receipts)"
        return "accepted, waiting for receipts"
    return "not requested yet" if not view.requested else f"in flight ({view.phase})"


def _notes(view: MessageView) -> str:
    notes = []
    if view.failures:
        notes.append(f"failed: code{'s' if len(view.failures) > 1 else ''} {', '.join(view.failures)}")
    if view.retries:
        notes.append(f"retried {view.retries}x")
    if view.fallbacks:
        notes.append(f"fell back ({view.fallbacks[-1]})")
    return "; ".join(notes)


def table_lines(planned: Sequence[PlannedMessage], views: Mapping[str, MessageView],
                receipts: Mapping[str, frozenset[str]]) -> list[str]:
    """One row per planned message: customer, masked phone, template, channel path, status, notes."""
    rows = [("#", "customer", "phone", "template", "channels", "status", "notes")]
    for number, plan in enumerate(planned, start=1):
        view = views.get(plan.message_id) or MessageView(plan.message_id)
        template = plan.template
        if view.sent_template and view.sent_template != template:
            template = f"{template} → {view.sent_template}"
        rows.append((str(number), plan.customer.label(), mask_phone(plan.customer.phone), template,
                     " → ".join(view.path) or "-", status_of(view, receipts, plan.customer.timezone), _notes(view)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    return [line.rstrip() for line in lines]


def funnel_lines(counts: Counts) -> list[str]:
    """The funnel; the first six numbers after `requested` add up to it."""
    rows = [
        ("requested", counts.requested, "messages the pipeline registered (direct requests and triggers)"),
        ("  suppressed", counts.suppressed, "no consent, opted out, frequency cap or no usable address"),
        ("  deferred", counts.deferred, "quiet hours in the recipient's zone: sent when they end"),
        ("  dead-lettered", counts.dead_lettered, "every channel of the route failed"),
        ("  expired", counts.expired, "not sent before its not_after"),
        ("  sent", counts.sent, "accepted by a provider"),
        ("    delivered", counts.delivered, "delivered receipt"),
        ("    read", counts.read, "read receipt"),
        ("failed", counts.failed, "messages with a failed attempt or receipt on the way (retried or fallen back)"),
        ("fallen back", counts.fallen_back, "messages that moved to the next channel of their route"),
    ]
    if counts.in_flight:
        rows.insert(6, ("  in flight", counts.in_flight, "not final yet"))
    lines = [f"  {name:<16}{value:>4}   {meaning}" for name, value, meaning in rows]
    parts = " + ".join(f"{name} {value}" for name, value in (
        ("suppressed", counts.suppressed), ("deferred", counts.deferred), ("dead-lettered", counts.dead_lettered),
        ("expired", counts.expired), ("sent", counts.sent), ("in flight", counts.in_flight)) if value or
        name in ("sent",))
    check = "=" if counts.adds_up() else "≠"
    return [*lines, f"  requested {counts.requested} {check} {parts}"]
