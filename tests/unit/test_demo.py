"""The demo's pure parts: the scenario, the derived declaration, the fold of message events and what is printed."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import DecodedEvent, decode
from streams.pipeline._commands import check_command
from streams.pipeline._state import ContactRow
from streams.pipeline._writer import Writer
from switchboard._demo_config import (
    SmsStandIn,
    demo_declaration,
    dump_toml,
    receipt_statuses,
    write_demo_declaration,
)
from switchboard._demo_report import Pace, funnel_lines, progress_line, table_lines
from switchboard._demo_scenario import Scenario, build_scenario, pick_zones
from switchboard._demo_stack import PartFailed, Processes, wait_for_line
from switchboard._demo_track import Tracker
from switchboard.cli import main
from switchboard.config import PipelineConfig, load
from switchboard.localkafka import project_root
from switchboard.workers import WorkerProcess

SHIPPED = project_root() / "pipeline.toml"
NOON_BERLIN = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # 12:00 in Berlin, 01:00 next day in Auckland
WA = {"whatsapp": frozenset({"sent", "delivered", "read", "failed"}), "sms": frozenset[str]()}


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    return write_demo_declaration(SHIPPED, tmp_path_factory.mktemp("demo") / "pipeline.toml", "http://127.0.0.1:9")


# -- the scenario ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 8, 9, 13, 50])
def test_the_scenario_asks_for_exactly_the_requested_number_of_messages(demo_config: PipelineConfig,
                                                                        size: int) -> None:
    scenario = build_scenario(size, demo_config, NOON_BERLIN)
    planned = scenario.expected(demo_config)
    assert len(planned) == size
    assert len({p.message_id for p in planned}) == size
    assert len(scenario.customers) == max(4, -(-size // 2))


def test_the_default_scenario_shows_every_case(demo_config: PipelineConfig) -> None:
    scenario = build_scenario(8, demo_config, NOON_BERLIN)
    planned = scenario.expected(demo_config)
    assert Counter(p.template for p in planned) == {"login_code": 2, "weekend_offer": 2, "order_shipped": 2,
                                                    "vip_order_alert": 1, "payment_failed": 1}
    assert len(scenario.events) == 5  # four fire a trigger, a regular customer's small order fires none
    otps = [r for r in scenario.requests if r.template == "login_code"]
    assert {(r.category, r.priority) for r in otps} == {("authentication", "high")}
    vip, regular, owl, unreachable = scenario.customers
    assert vip.tags == ("vip",)
    assert vip.marketing_consent
    assert regular.marketing_consent
    assert not owl.marketing_consent
    assert not unreachable.marketing_consent
    assert scenario.undeliverable == {unreachable.phone.lstrip("+")}
    assert vip.timezone == "Europe/Berlin"  # the tenant's own zone first while it is day there
    assert scenario.night == ("Pacific/Auckland", "Auckland")
    assert owl.timezone == "Pacific/Auckland"


def test_the_scenario_is_deterministic(demo_config: PipelineConfig) -> None:
    first, second = (build_scenario(8, demo_config, NOON_BERLIN) for _ in range(2))
    assert first.contact_commands() == second.contact_commands()
    assert first.request_commands() == second.request_commands()
    assert first.business_records() == second.business_records()


def test_commands_are_valid_and_events_decode(demo_config: PipelineConfig) -> None:
    scenario = build_scenario(8, demo_config, NOON_BERLIN)
    for key, command in (*scenario.contact_commands(), *scenario.consent_commands(), *scenario.request_commands()):
        assert check_command(command)["contact_id"] == key
    types = []
    for _, value in scenario.business_records():
        event = decode(value)
        assert isinstance(event, DecodedEvent)
        types.append(event.event_type)
    assert sorted(set(types)) == ["OrderPlaced", "OrderShipped", "PaymentFailed"]


def test_zones_follow_the_clock() -> None:
    quiet = load(SHIPPED).defaults.quiet_hours
    berlin_night = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # 00:30 in Berlin, 08:30 in Tokyo
    day, night = pick_zones(quiet, berlin_night, home="Europe/Berlin")
    assert "Europe/Berlin" not in [zone for zone, _, _ in day]
    assert "Asia/Tokyo" in [zone for zone, _, _ in day]
    assert night is not None
    assert night[0] != "Asia/Tokyo"
    day, night = pick_zones(None, berlin_night, home="Asia/Tokyo")
    assert day[0][0] == "Asia/Tokyo"
    assert night is None


def test_the_writer_requests_exactly_the_planned_messages(demo_config: PipelineConfig) -> None:
    """The scenario's message ids are the ones the contact writer makes, and the writer decides as the plan says."""
    scenario = build_scenario(8, demo_config, NOON_BERLIN)
    writer, rows = Writer(lambda: demo_config), dict[str, ContactRow]()
    now = NOON_BERLIN.timestamp()
    outcomes: dict[str, str] = {}
    for key, command in (*scenario.contact_commands(), *scenario.consent_commands(), *scenario.request_commands(),
                         *_trigger_commands(scenario, demo_config)):
        for emitted in writer.handle(rows.setdefault(key, ContactRow()), command, now).events:
            kind = type(emitted.event).__qualname__
            if kind.startswith("Message."):
                outcomes[str(emitted.aggregate.id)] = kind  # the last decision per message
    planned = {p.message_id: p for p in scenario.expected(demo_config)}
    assert set(outcomes) == set(planned)
    owl, unreachable = scenario.customers[2], scenario.customers[3]
    assert {planned[m].template: o for m, o in outcomes.items() if planned[m].customer == owl} == {
        "order_shipped": "Message.Deferred", "login_code": "Message.DispatchAttempted"}  # passwords skip quiet hours
    assert {planned[m].template: o for m, o in outcomes.items() if planned[m].customer == unreachable} == {
        "weekend_offer": "Message.Suppressed", "payment_failed": "Message.DispatchAttempted"}


def _trigger_commands(scenario: Scenario, config: PipelineConfig) -> list[tuple[str, dict[str, Any]]]:
    """What the pipeline's trigger stage writes for each business event and each trigger of its type."""
    commands = []
    for event in scenario.events:
        envelope = event.record["envelope"]
        fields = {k: v for k, v in event.record.items() if k != "envelope"}
        for trigger in config.triggers:
            if trigger.event == event.event_type:
                cid = event.customer.contact_id(scenario.tenant)
                commands.append((cid, {"kind": "trigger", "v": 1, "command_id": envelope["event_id"],
                                       "tenant": scenario.tenant, "contact_id": cid, "trigger": trigger.name,
                                       "event_type": event.event_type, "event": fields}))
    return commands


def test_a_size_below_one_is_refused(demo_config: PipelineConfig) -> None:
    with pytest.raises(Exception, match="--messages must be at least 1"):
        build_scenario(0, demo_config, NOON_BERLIN)


# -- the demo's declaration ------------------------------------------------------------------------------------------


def test_toml_written_back_reads_the_same() -> None:
    parsed = tomllib.loads(SHIPPED.read_text())
    assert tomllib.loads(dump_toml(parsed)) == parsed


def test_the_demo_declaration_points_whatsapp_at_the_simulator(demo_config: PipelineConfig) -> None:
    channels = {c.id: c for c in demo_config.channels}
    assert (channels["whatsapp"].driver, dict(channels["whatsapp"].settings)) == (
        "whatsapp", {"base_url": "http://127.0.0.1:9"})
    assert (channels["sms"].driver, channels["sms"].settings) == ("inprocess", ())
    production = tomllib.loads(SHIPPED.read_text())
    assert demo_declaration(production, "http://x")["routes"] == production["routes"]
    assert "driver" not in production["channels"][0]  # the repository's file is left as it is
    assert receipt_statuses(demo_config)["sms"] == frozenset()
    assert {"delivered", "read"} <= receipt_statuses(demo_config)["whatsapp"]


def test_with_the_twilio_simulator_sms_goes_through_twilio_s_driver_and_reports_delivery(tmp_path: Path) -> None:
    sms = SmsStandIn("http://127.0.0.1:8", "http://127.0.0.1:7/webhooks/sms")
    config = write_demo_declaration(SHIPPED, tmp_path / "pipeline.toml", "http://127.0.0.1:9", sms)
    channels = {c.id: c for c in config.channels}
    assert (channels["sms"].driver, dict(channels["sms"].settings)) == (
        "sms", {"base_url": "http://127.0.0.1:8", "webhook_url": "http://127.0.0.1:7/webhooks/sms"})
    assert {"sent", "delivered"} <= receipt_statuses(config)["sms"]  # the demo waits for SMS delivery too
    assert "the Twilio simulator at http://127.0.0.1:8" in (tmp_path / "pipeline.toml").read_text()


# -- following messages and reporting --------------------------------------------------------------------------------


class _Events:
    """Decoded message events of one message, numbered like the writer's."""

    def __init__(self, message_id: str) -> None:
        self.message_id, self.version = message_id, 0

    def __call__(self, event_type: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        self.version += 1
        envelope = {"event_id": f"{self.message_id}-{self.version}", "aggregate_id": self.message_id}
        return event_type, {"envelope": envelope, "contact_id": "c-1", **fields}


def _fallen_back_to_sms(message_id: str) -> list[tuple[str, dict[str, Any]]]:
    e = _Events(message_id)
    return [e("MessageRequested", template_name="payment_failed"), e("MessageRouted", channel="whatsapp"),
            e("MessageDispatchAttempted", attempt=1), e("MessageFailed", provider_code="131000"),
            e("MessageRetryScheduled", attempt=1), e("MessageDispatchAttempted", attempt=2),
            e("MessageAcceptedByProvider", attempt=2), e("MessageFailed", provider_code="131026"),
            e("MessageFallbackTriggered", from_channel="whatsapp", to_channel="sms", reason="receipt failed: 131026"),
            e("MessageRouted", channel="sms"), e("MessageDispatchAttempted", attempt=3),
            e("MessageAcceptedByProvider", attempt=3)]


def test_a_message_is_final_only_as_far_as_its_channel_reports() -> None:
    tracker = Tracker(["m-read", "m-sms"], WA)
    e = _Events("m-read")
    read = [e("MessageRequested", template_name="login_code"), e("MessageRouted", channel="whatsapp"),
            e("MessageAcceptedByProvider", attempt=1), e("MessageRead"), e("MessageDelivered")]
    for event_type, payload in read[:-1]:
        tracker.apply(event_type, payload)
    assert not tracker.views["m-read"].is_final(WA, 0)  # read overtook delivered: its receipt is still to come
    tracker.apply(*read[-1])
    tracker.apply(*read[-1])  # a redelivered event changes nothing
    for event_type, payload in _fallen_back_to_sms("m-sms"):
        tracker.apply(event_type, payload)
    assert tracker.done(0)
    sms = tracker.views["m-sms"]
    assert (sms.path, sms.failures, sms.retries) == (["whatsapp", "sms"], ["131000", "131026"], 1)
    counts = tracker.counts(0)
    assert (counts.requested, counts.sent, counts.delivered, counts.read, counts.failed, counts.fallen_back) == (
        2, 2, 1, 1, 1, 1)
    assert counts.adds_up()


def test_a_deferral_is_final_unless_it_ends_soon() -> None:
    tracker, e = Tracker(["m-1"], WA), _Events("m-1")
    until = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    for event_type, payload in (e("MessageRequested"), e("MessageDeferred", until=until, reason="quiet_hours")):
        tracker.apply(event_type, payload)
    assert tracker.done((until - timedelta(hours=1)).timestamp())
    assert not tracker.done((until - timedelta(seconds=30)).timestamp())


def test_the_table_masks_phones_and_the_funnel_adds_up(demo_config: PipelineConfig) -> None:
    scenario = build_scenario(8, demo_config, NOON_BERLIN)
    planned = scenario.expected(demo_config)
    tracker = Tracker([p.message_id for p in planned], WA)
    for event_type, payload in _fallen_back_to_sms(planned[0].message_id):
        tracker.apply(event_type, payload)
    e = _Events(planned[1].message_id)
    for event_type, payload in (e("MessageRequested"), e("MessageSuppressed", reason="no_consent")):
        tracker.apply(event_type, payload)
    lines = table_lines(planned, tracker.views, WA)
    text = "\n".join(lines)
    assert len(lines) == 1 + len(planned)
    assert all(c.phone not in text for c in scenario.customers)
    assert "whatsapp → sms" in lines[1]
    assert "sent (the sms stand-in sends no receipts)" in lines[1]
    assert "suppressed: no_consent" in lines[2]
    counts = tracker.counts(0)
    funnel = funnel_lines(counts)
    assert funnel[-1] == "  requested 2 = suppressed 1 + sent 1"
    assert "in flight" not in "\n".join(funnel)
    assert progress_line(3.2, counts, 8) == ("[   3s] requested 2/8 · accepted 1 · delivered 0 · read 0 · failed 1 · "
                                             "suppressed 1 · deferred 0 · final 2/8")
    pace = Pace(window=5)
    pace.add(10.0, 0)
    pace.add(12.0, 2)
    assert progress_line(3.2, counts, 8, pace).endswith("final 2/8 · 1.0/s · ETA 6s")


# -- the command line and a part that does not start ----------------------------------------------------------------


@pytest.mark.parametrize(("args", "error"), [(["--timeout", "0"], "--duration must be positive"),
                                             (["--duration", "-1"], "--duration must be positive"),
                                             (["--campaign", "-5"], "--campaign must not be negative"),
                                             (["--workers", "7"], "--workers must be between 1 and 6")])
def test_demo_refuses_bad_flags_before_starting_anything(capsys: pytest.CaptureFixture[str], args: list[str],
                                                         error: str) -> None:
    assert main(["demo", *args]) == 2
    assert f"switchboard: error: {error}" in capsys.readouterr().err


async def test_a_part_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    processes = Processes()
    processes.start(WorkerProcess(_NoSuchChannel(), tmp_path / "receiver.log"))
    with pytest.raises(PartFailed) as failed:
        await wait_for_line(processes.started[0], re.compile("never printed"), processes, timeout=60)
    assert "no driver for channel 'nosuch'" in str(failed.value)
    assert "exited with code 2 during start-up" in str(failed.value)
    assert processes.stop_all() == {}


class _NoSuchChannel:
    """`switchboard receiver` for a channel without a driver: it exits with code 2 before opening its port."""

    worker_name = "webhook receiver"

    def command_line(self) -> list[str]:
        return ["receiver", "--bootstrap", "127.0.0.1:1", "--port", "0", "--channel", "nosuch"]
