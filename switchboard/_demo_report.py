"""What the demo prints: a progress line, the table of messages and the funnel. Pure text, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from connectors import mask_phone
from switchboard._demo_scenario import PlannedMessage
from switchboard._demo_track import Counts, MessageView

__all__ = ["FUNNEL_COLUMNS", "Funnel", "Pace", "funnel_lines", "funnel_table_lines", "progress_line", "status_of",
           "table_lines", "template_totals"]

# The per-template table's columns: (stage as the projections name it, heading).
FUNNEL_COLUMNS = (("requested", "requested"), ("suppressed", "suppressed"), ("deferred", "deferred"),
                  ("accepted", "accepted"), ("sent", "sent"), ("delivered", "delivered"), ("read", "read"),
                  ("failed", "failed"), ("fell_back", "fell back"), ("dead_lettered", "dead-lettered"),
                  ("expired", "expired"))
Funnel = Mapping[str, Mapping[str, Mapping[str, int]]]  # template -> channel -> stage -> messages


class Pace:
    """Messages reaching a final state per second over the last `window` seconds, and the time left at that pace."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: list[tuple[float, int]] = []

    def add(self, at: float, final: int) -> None:
        self._samples.append((at, final))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window:
            self._samples.pop(0)

    def rate(self) -> float:
        if len(self._samples) < 2 or self._samples[-1][0] <= self._samples[0][0]:
            return 0.0
        (t0, f0), (t1, f1) = self._samples[0], self._samples[-1]
        return max(0.0, (f1 - f0) / (t1 - t0))

    def eta(self, remaining: int) -> str:
        rate = self.rate()
        if remaining <= 0:
            return "done"
        return f"{remaining / rate:.0f}s" if rate > 0 else "?"


def progress_line(elapsed: float, counts: Counts, expected: int, pace: Pace | None = None) -> str:
    """`[  4s] requested 6/8 · accepted 4 · delivered 3 · read 2 · failed 1 · suppressed 1 · deferred 1 ·
    final 5/8 · 1.2/s · ETA 3s`."""
    total = max(expected, counts.requested)
    line = (f"[{elapsed:4.0f}s] requested {counts.requested:,}/{expected:,} · accepted {counts.sent:,} · "
            f"delivered {counts.delivered:,} · read {counts.read:,} · failed {counts.failed:,} · "
            f"suppressed {counts.suppressed:,} · deferred {counts.deferred:,} · final {counts.final:,}/{total:,}")
    if pace is None:
        return line
    return f"{line} · {pace.rate():,.1f}/s · ETA {pace.eta(total - counts.final)}"


def template_totals(funnel: Funnel) -> dict[str, dict[str, int]]:
    """template -> stage -> messages, over every channel."""
    totals: dict[str, dict[str, int]] = {}
    for template, channels in funnel.items():
        row = totals.setdefault(template, {})
        for counts in channels.values():
            for stage, count in counts.items():
                row[stage] = row.get(stage, 0) + count
    return totals


def _channel(channel: str) -> str:
    return "not routed" if channel == "-" else channel


def _template(template: str) -> str:
    return "free text" if template == "-" else template


def funnel_table_lines(funnel: Funnel) -> list[str]:
    """The funnel per template (all channels) and under it per channel; `-` as channel: before any routing."""
    rows = [("template", "channel", *(heading for _, heading in FUNNEL_COLUMNS))]
    totals = template_totals(funnel)
    for template in sorted(funnel):
        total = totals[template]
        rows.append((_template(template), "all", *(f"{total.get(stage, 0):,}" for stage, _ in FUNNEL_COLUMNS)))
        for channel in sorted(funnel[template]):
            if len(funnel[template]) > 1:  # one channel only: the template's row says it all
                counts = funnel[template][channel]
                rows.append(("", _channel(channel), *(f"{counts.get(stage, 0):,}" for stage, _ in FUNNEL_COLUMNS)))
    grand = template_totals({"all": totals}).get("all", {})
    rows.append(("all templates", "all", *(f"{grand.get(stage, 0):,}" for stage, _ in FUNNEL_COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                 strict=True)))
            .rstrip() for row in rows]


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
