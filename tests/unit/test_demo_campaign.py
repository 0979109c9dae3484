"""The demo's campaign generator, its funnel fold (the same as the delivery-stats projection's) and its HTML report."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from connectors.whatsapp_simulator import _Delivery, _Outbox
from projections._delivery_stats import DeliveryStatsProjection
from streams.pipeline._commands import check_command
from switchboard._demo_campaign import (
    NO_WHATSAPP,
    OPTED_IN,
    OPTED_OUT,
    QUIET,
    SHARES,
    build_campaign,
)
from switchboard._demo_config import write_demo_declaration
from switchboard._demo_html import LATENCY_BOUNDS_MS, ReportPage, histogram, render_report
from switchboard._demo_report import funnel_table_lines, template_totals
from switchboard._demo_scenario import pick_zones
from switchboard._demo_track import Tracker
from switchboard.config import PipelineConfig
from switchboard.localkafka import project_root

NOON_BERLIN = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # 01:00 next day in Auckland: someone is asleep
WA = {"whatsapp": frozenset({"sent", "delivered", "read", "failed"}), "sms": frozenset[str]()}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    return write_demo_declaration(project_root() / "pipeline.toml", tmp_path_factory.mktemp("demo") / "p.toml",
                                  "http://127.0.0.1:9")


# -- the campaign ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [300, 10_000])
def test_the_segments_have_their_shares(config: PipelineConfig, size: int) -> None:
    campaign = build_campaign(size, config, NOON_BERLIN)
    shares = campaign.shares()
    assert sum(shares.values()) == len(campaign.recipients) == size
    for segment, share in SHARES.items():
        assert shares[segment] == round(size * share)
    assert shares[OPTED_IN] == size - sum(round(size * share) for share in SHARES.values())
    assert len({c.phone for c in campaign.recipients}) == size  # every recipient has a number of their own
    assert len({c.ref for c in campaign.recipients}) == size
    assert len(campaign.repliers) == round(shares[OPTED_IN] * 0.02)
    assert all(campaign.segments[ref] == OPTED_IN for ref in campaign.repliers)


def test_each_segment_is_set_up_for_what_the_pipeline_does_with_it(config: PipelineConfig) -> None:
    campaign = build_campaign(1_000, config, NOON_BERLIN)
    quiet = config.defaults.quiet_hours
    assert quiet is not None
    _, night = pick_zones(quiet, NOON_BERLIN)
    assert night is not None
    by_segment: dict[str, list[Any]] = {}
    for customer in campaign.recipients:
        by_segment.setdefault(campaign.segments[customer.ref], []).append(customer)
    assert {c.timezone for c in by_segment[QUIET]} == {night[0]}
    others = [c for s in (OPTED_IN, OPTED_OUT, NO_WHATSAPP) for c in by_segment[s]]
    assert all(not replace(quiet, timezone=c.timezone).is_quiet(NOON_BERLIN) for c in others)
    assert all(c.undeliverable for c in by_segment[NO_WHATSAPP])
    assert campaign.undeliverable == {c.phone.lstrip("+") for c in by_segment[NO_WHATSAPP]}
    assert not any(c.undeliverable for s in (OPTED_IN, OPTED_OUT, QUIET) for c in by_segment[s])
    kinds = Counter((command["kind"], command.get("action")) for _, command in campaign.contact_commands())
    assert kinds == {("contact", None): 1_000, ("consent", "grant"): 2_000,  # WhatsApp and SMS
                     ("consent", "revoke"): 2 * len(by_segment[OPTED_OUT])}


def test_the_campaign_is_deterministic_with_a_seed(config: PipelineConfig) -> None:
    first, second = (build_campaign(500, config, NOON_BERLIN, seed=3) for _ in range(2))
    assert first == second
    assert first.contact_commands() == second.contact_commands()
    assert first.request_commands() == second.request_commands()
    assert build_campaign(500, config, NOON_BERLIN, seed=4).segments != first.segments


def test_the_commands_are_valid_and_keyed_by_contact(config: PipelineConfig) -> None:
    campaign = build_campaign(200, config, NOON_BERLIN)
    requests = campaign.request_commands()
    assert len(requests) == 200
    replier = next(c for c in campaign.recipients if c.ref in campaign.repliers)
    for key, command in (*campaign.contact_commands(), *requests, campaign.reply_request(replier)):
        assert check_command(command)["contact_id"] == key
    offer = requests[0][1]["message"]
    assert (offer["category"], offer["template"], offer["priority"]) == ("marketing", "weekend_offer", "low")
    answer = campaign.reply_request(replier)[1]["message"]
    assert answer["category"] == "service"
    assert "template" not in answer
    assert "{{ first_name }}" in answer["body"]
    assert len(set(campaign.message_ids())) == 200
    assert campaign.reply_message_id(replier) not in campaign.message_ids()


def test_no_quiet_hours_share_when_nobody_is_asleep(config: PipelineConfig) -> None:
    no_quiet = replace(config, defaults=replace(config.defaults, quiet_hours=None))
    shares = build_campaign(1_000, no_quiet, NOON_BERLIN).shares()
    assert shares[QUIET] == 0
    assert shares[OPTED_IN] == 1_000 - shares[OPTED_OUT] - shares[NO_WHATSAPP]


def test_a_size_out_of_range_is_refused(config: PipelineConfig) -> None:
    with pytest.raises(Exception, match="--campaign must be between 0 and 100,000"):
        build_campaign(100_001, config, NOON_BERLIN)
    assert build_campaign(0, config, NOON_BERLIN).recipients == ()


# -- the funnel: the demo's count and the projection's ---------------------------------------------------------------


def _events(message_id: str, steps: list[tuple[str, dict[str, Any]]], start: datetime) -> list[tuple[str, dict[str,
                                                                                                             Any]]]:
    out = []
    for version, (event_type, fields) in enumerate(steps, start=1):
        envelope = {"event_id": f"{message_id}-{version}", "aggregate_id": message_id, "aggregate_version": version,
                    "tenant_id": "acme", "occurred_at": start + timedelta(milliseconds=300 * version)}
        out.append((event_type, {"envelope": envelope, "contact_id": "c-1", **fields}))
    return out


def _story(start: datetime) -> list[tuple[str, dict[str, Any]]]:
    read = _events("m-read", [("MessageRequested", {"template_name": "weekend_offer"}),
                              ("MessageRouted", {"channel": "whatsapp", "sender": "wa-main"}),
                              ("MessageAcceptedByProvider", {}), ("MessageSent", {}), ("MessageDelivered", {}),
                              ("MessageRead", {})], start)
    fell_back = _events("m-sms", [("MessageRequested", {"template_name": "payment_failed"}),
                                  ("MessageRouted", {"channel": "whatsapp", "sender": "wa-main"}),
                                  ("MessageAcceptedByProvider", {}), ("MessageFailed", {"provider_code": "131026"}),
                                  ("MessageFallbackTriggered", {"to_channel": "sms", "reason": "failed"}),
                                  ("MessageRouted", {"channel": "sms", "sender": "sms-main"}),
                                  ("MessageAcceptedByProvider", {})], start)
    suppressed = _events("m-off", [("MessageRequested", {"template_name": "weekend_offer"}),
                                   ("MessageSuppressed", {"reason": "consent_revoked"})], start)
    free_text = _events("m-text", [("MessageRequested", {"template_name": None}),
                                   ("MessageRouted", {"channel": "whatsapp", "sender": "wa-service"}),
                                   ("MessageAcceptedByProvider", {})], start)
    return [*read, *fell_back, *suppressed, *free_text]


def test_the_demo_counts_its_funnel_as_the_delivery_stats_projection_does() -> None:
    events = _story(NOON_BERLIN)
    tracker, rows = Tracker([], WA), dict[str, Any]()
    projection = DeliveryStatsProjection()
    for event_type, payload in [*events, events[2]]:  # one event delivered twice
        tracker.apply(event_type, payload)
        rows.update(projection.apply(rows.get, event_type, payload))
    day = NOON_BERLIN.date().isoformat()
    projected = {key.split(":")[3]: row["by_channel"]
                 for key, row in rows.items() if key.startswith(f"funnel:acme:{day}:")}
    assert tracker.funnel() == projected
    # Each stage once per message: the acceptance on SMS after the fallback is not a second `accepted`.
    assert tracker.funnel()["payment_failed"] == {"-": {"requested": 1},
                                                  "whatsapp": {"accepted": 1, "failed": 1, "fell_back": 1}}
    assert template_totals(tracker.funnel())["weekend_offer"] == {
        "requested": 2, "suppressed": 1, "accepted": 1, "sent": 1, "delivered": 1, "read": 1}
    assert tracker.views["m-read"].sender == "wa-main"
    assert tracker.latencies()["requested_to_accepted"] == pytest.approx([600.0, 600.0, 600.0])
    lines = funnel_table_lines(tracker.funnel())
    assert lines[0].split() == ["template", "channel", "requested", "suppressed", "deferred", "accepted", "sent",
                                "delivered", "read", "failed", "fell", "back", "dead-lettered", "expired"]
    assert lines[-1].split() == ["all", "templates", "all", "4", "1", "0", "3", "1", "1", "1", "1", "1", "0", "0"]
    assert any(line.split()[:2] == ["free", "text"] for line in lines)


# -- the HTML report -------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects the tags left open (a well-formed page leaves none but void ones), the funnel table's cells by
    (template, channel, stage), the funnel chart's numbers, and anything fetched from elsewhere."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.cells: dict[tuple[str, str, str], int] = {}
        self.bars: dict[str, int] = {}
        self.external: list[str] = []
        self._row: tuple[str, str] | None = None
        self._cell: str | None = None
        self._bar: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.external += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "tr" and "data-template" in found:
            self._row = (found["data-template"] or "", found.get("data-channel") or "")
        self._cell = found.get("data-stage") if tag == "td" and self._row else None
        self._bar = found.get("data-stage") if tag == "text" else None

    def handle_endtag(self, tag: str) -> None:
        assert self.open, tag
        assert self.open[-1] == tag, (self.open, tag)
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self._cell and self._row:
            self.cells[(*self._row, self._cell)] = int(data)
            self._cell = None
        if self._bar:
            self.bars[self._bar] = int(data.replace(",", ""))
            self._bar = None


def test_the_report_is_one_valid_page_with_the_funnel_numbers() -> None:
    tracker = Tracker([], WA)
    for event_type, payload in _story(NOON_BERLIN):
        tracker.apply(event_type, payload)
    page = ReportPage("20261125-120000-abcd", "Switchboard demo", tracker.funnel(), tracker.latencies(),
                      ["Fault <b>burst</b> & more"], "Console at http://127.0.0.1:1/console/",
                      ["#  customer  phone", "1  Ana  +49*******12"])
    html = render_report(page)
    parsed = _Page()
    parsed.feed(html)
    parsed.close()
    assert parsed.open == []
    assert parsed.external == []  # self-contained: no scripts, styles or images fetched from anywhere
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") == 4  # the funnel and one histogram per latency span
    assert parsed.cells[("weekend_offer", "all", "requested")] == 2
    assert parsed.cells[("weekend_offer", "all", "suppressed")] == 1
    assert parsed.cells[("payment_failed", "whatsapp", "accepted")] == 1
    assert parsed.cells[("payment_failed", "whatsapp", "fell_back")] == 1
    assert parsed.bars["requested"] == 4
    assert parsed.bars["read"] == 1
    assert parsed.bars["fell_back"] == 1
    assert "Fault &lt;b&gt;burst&lt;/b&gt; &amp; more" in html  # notes are escaped
    assert "median 600 ms" in html


def test_a_receipt_stamped_to_the_second_before_its_acceptance_is_a_latency_of_zero() -> None:
    """WhatsApp's receipts carry whole seconds: delivered at 12:00:00.9 is stamped 12:00:00, before the acceptance
    we stamped 12:00:00.6."""
    accepted_at = NOON_BERLIN + timedelta(milliseconds=600)
    tracker = Tracker([], WA)
    for event_type, payload in _events("m-1", [("MessageRequested", {"template_name": "weekend_offer"}),
                                               ("MessageRouted", {"channel": "whatsapp", "sender": "wa-main"}),
                                               ("MessageAcceptedByProvider", {}),
                                               ("MessageDelivered", {"provider_at": NOON_BERLIN}),
                                               ("MessageRead", {"provider_at": NOON_BERLIN + timedelta(seconds=3)})],
                                       NOON_BERLIN - timedelta(milliseconds=300)):
        tracker.apply(event_type, payload)
    assert tracker.views["m-1"].stages["accepted"][1] == accepted_at.timestamp()
    latencies = tracker.latencies()
    assert latencies["accepted_to_delivered"] == [0.0]
    assert latencies["delivered_to_read"] == pytest.approx([3000.0])


def test_the_reports_latency_captions_keep_three_significant_digits() -> None:
    html = render_report(ReportPage("20261125-120000-abcd", "Switchboard demo", {},
                                    {"requested_to_accepted": [45_208.0, 93_501.0]}, [], "", []))
    assert "median 1.56 min, p99 1.56 min" in html
    html = render_report(ReportPage("20261125-120000-abcd", "Switchboard demo", {},
                                    {"requested_to_accepted": [45_208.0]}, [], "", []))
    assert "median 45.2 s" in html


def test_latencies_fall_into_buckets_up_to_an_open_ended_one() -> None:
    counts = histogram([10, 50, 51, 4_000, 10**7])
    assert len(counts) == len(LATENCY_BOUNDS_MS) + 1
    assert counts[0] == 2  # (0, 50]
    assert counts[1] == 1
    assert counts[LATENCY_BOUNDS_MS.index(5000)] == 1
    assert counts[-1] == 1


# -- the simulator's webhooks ----------------------------------------------------------------------------------------


async def test_the_simulator_posts_webhooks_concurrently_when_asked() -> None:
    """Four posts that each wait for the others can only finish when four are in flight at once."""
    arrived, everyone = [], asyncio.Event()

    async def deliver(delivery: _Delivery) -> None:
        arrived.append(delivery.body)
        if len(arrived) == 4:
            everyone.set()
        await everyone.wait()

    outbox = _Outbox(deliver, concurrency=4)
    outbox.start()
    now = asyncio.get_running_loop().time()
    for number in range(4):
        outbox.put(now + number * 0.001, _Delivery(str(number).encode()))
    try:
        assert await outbox.drain(timeout=30)
        assert arrived == [b"0", b"1", b"2", b"3"]  # started in due order
    finally:
        await outbox.close()
