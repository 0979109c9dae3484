"""The contact writer's decisions, command by command, without Kafka."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregates import Channel, ConsentCategory
from streams.pipeline._state import ContactRow
from streams.pipeline._writer import PROBE_FLOOR_SECONDS, Effects, Writer
from switchboard._config_parse import load_bytes
from switchboard.config import PipelineConfig
from tests.unit.pipeline.conftest import PIPELINE, contact_command, outcome, request

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
NIGHT = datetime(2026, 11, 25, 23, 0, tzinfo=UTC).timestamp()


def writer(config: PipelineConfig) -> Writer:
    return Writer(lambda: config, random.Random(7))


def event_types(effects: Effects) -> list[str]:
    return [type(e.event).__qualname__ for e in effects.events]


def test_a_request_is_rendered_routed_and_handed_to_dispatch(config: PipelineConfig) -> None:
    row = ContactRow()
    effects = writer(config).handle(row, request("o-1"), NOON)
    assert event_types(effects) == ["Contact.Registered", "Message.Requested", "Message.Rendered", "Message.Routed",
                                    "Message.DispatchAttempted"]
    [job] = effects.jobs
    assert (job["channel"], job["sender"], job["attempt"]) == ("whatsapp", "wa-main", 1)
    assert job["content"]["name"] == "order_shipped"
    assert job["content"]["named"] == [["order_id", "o-1"]]


def test_a_repeated_request_changes_nothing(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    w.handle(row, request("o-1"), NOON)
    again = w.handle(row, request("o-1"), NOON + 1)
    assert again.events == []
    assert again.jobs == []


def test_later_messages_wait_for_the_earlier_ones_outcome(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    first = w.handle(row, request("o-1"), NOON).jobs[0]
    assert w.handle(row, request("o-2"), NOON + 1).jobs == []
    retry = w.handle(row, outcome(first, "retry_later"), NOON + 2)
    assert "Message.RetryScheduled" in event_types(retry)
    assert retry.jobs == []
    fired = w.handle(row, {"kind": "tick", "at": NOON + 60}, NOON + 60)
    assert [j["message_id"] for j in fired.jobs] == [first["message_id"]]
    assert fired.jobs[0]["attempt"] == 2
    after = w.handle(row, outcome(fired.jobs[0], "accepted", provider_message_id="wamid.1"), NOON + 61)
    assert [j["attempt"] for j in after.jobs] == [1]
    assert after.jobs[0]["message_id"] != first["message_id"]


def test_permanent_failure_falls_back_then_dead_letters(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    fell = w.handle(row, outcome(job, "permanent_failure", error={"code": "131026", "message": "undeliverable"}),
                    NOON + 1)
    assert "Message.FallbackTriggered" in event_types(fell)
    [sms] = fell.jobs
    assert (sms["channel"], sms["sender"]) == ("sms", "sms-main")
    dead = w.handle(row, outcome(sms, "permanent_failure", error={"code": "21211", "message": "bad number"}), NOON + 2)
    assert "Message.DeadLettered" in event_types(dead)
    assert "permanent_failure: 21211" in dead.dead_letters[0]["reason"]
    assert row.finished[job["message_id"]] == "dead_lettered"


def test_retries_are_bounded_by_the_policy(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("otp", priority="high", category="authentication"), NOON).jobs[0]
    w.handle(row, outcome(job, "retry_later"), NOON + 1)
    second = w.handle(row, {"kind": "tick", "at": NOON + 5}, NOON + 5).jobs[0]
    assert (second["channel"], second["attempt"]) == ("whatsapp", 2)
    moved = w.handle(row, outcome(second, "retry_later"), NOON + 6).jobs[0]
    assert moved["channel"] == "sms"  # urgent allows 2 attempts, then the chain moves on


def test_quiet_hours_defer_until_morning(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    deferred = w.handle(row, request("o-1"), NIGHT)
    assert "Message.Deferred" in event_types(deferred)
    assert deferred.jobs == []
    assert w.handle(row, {"kind": "tick", "at": NIGHT + 3600}, NIGHT + 3600).jobs == []
    morning = datetime(2026, 11, 26, 7, 0, tzinfo=UTC).timestamp()
    assert len(w.handle(row, {"kind": "tick", "at": morning}, morning).jobs) == 1


def test_marketing_needs_consent_and_a_revocation_suppresses(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    effects = w.handle(row, request("m-1", category="marketing", template="promo", parameters={}), NOON)
    assert "Message.Suppressed" in event_types(effects)
    consent = {"kind": "consent", "command_id": "g", "tenant": "acme", "contact_id": contact_command()["contact_id"],
               "action": "grant", "channel": "whatsapp", "category": "marketing"}
    w.handle(row, consent, NOON)
    assert w.handle(row, request("m-2", category="marketing", template="promo", parameters={}), NOON).jobs
    stop = {"kind": "inbound", "command_id": "i", "tenant": "acme", "contact_id": consent["contact_id"],
            "channel": "whatsapp", "provider_message_id": "wamid.in", "address": "+4917000000001", "at": NOON,
            "text": "STOP"}
    assert "Contact.ConsentRevoked" in event_types(w.handle(row, stop, NOON))


def test_free_text_needs_an_open_window(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    closed = w.handle(row, request("t-1", template=None, body="Hi {{ name }}", parameters={"name": "Ana"}), NOON)
    assert closed.jobs[0]["channel"] == "sms"  # WhatsApp refuses free text outside the window; SMS takes it
    inbound = {"kind": "inbound", "command_id": "i", "tenant": "acme", "contact_id": closed.jobs[0]["contact_id"],
               "channel": "whatsapp", "provider_message_id": "wamid.in", "address": "+4917000000001", "at": NOON}
    w.handle(row, inbound, NOON)
    w.handle(row, outcome(closed.jobs[0], "accepted", provider_message_id="sms-1"), NOON)
    opened = w.handle(row, request("t-2", template=None, body="Hi {{ name }}", parameters={"name": "Ana"}), NOON + 1)
    assert opened.jobs[0]["channel"] == "whatsapp"
    assert opened.jobs[0]["content"] == {"type": "text", "body": "Hi Ana"}


def test_a_trigger_checks_the_contacts_attributes(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    w.handle(row, contact_command(tags=("vip",)), NOON)
    trigger = {"kind": "trigger", "command_id": "evt-1", "tenant": "acme",
               "contact_id": contact_command()["contact_id"], "trigger": "shipping-notice",
               "event_type": "OrderShipped", "event": {"order_id": "A-9"}}
    assert w.handle(row, trigger, NOON).jobs[0]["content"]["named"] == [["order_id", "A-9"]]
    plain = ContactRow()
    w.handle(plain, contact_command(), NOON)
    assert w.handle(plain, trigger, NOON).jobs == []


def test_a_missed_deadline_falls_back(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("otp", priority="high", category="authentication"), NOON).jobs[0]
    w.handle(row, outcome(job, "accepted", provider_message_id="wamid.1"), NOON + 1)
    fell = w.handle(row, {"kind": "tick", "at": NOON + 40}, NOON + 40)
    assert "Message.FallbackTriggered" in event_types(fell)
    assert fell.jobs[0]["channel"] == "sms"


def test_a_lost_attempt_is_reconciled_by_its_receipt(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    w.handle(row, outcome(job, "unknown"), NOON + 1)
    receipt = {"kind": "receipt", "command_id": "rc", "contact_id": job["contact_id"], "message_id": job["message_id"],
               "status": "sent", "provider_message_id": "wamid.9", "at": NOON + 2}
    assert event_types(w.handle(row, receipt, NOON + 2)) == ["Message.Sent"]
    assert w.handle(row, {"kind": "tick", "at": NOON + 120}, NOON + 120).jobs == []


def test_an_attempt_nothing_answers_is_probed_at_the_dispatcher_ever_less_often(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    first = max(config.dispatch.reconcile_seconds, PROBE_FLOOR_SECONDS)
    assert w.handle(row, {"kind": "tick", "at": NOON + first - 1}, NOON + first - 1).jobs == []
    [probe] = w.handle(row, {"kind": "tick", "at": NOON + first}, NOON + first).jobs
    assert probe["kind"] == "probe"
    assert {k: probe[k] for k in ("message_id", "attempt", "channel", "sender")} == \
        {k: job[k] for k in ("message_id", "attempt", "channel", "sender")}
    # The next probe waits twice as long: a message waiting its turn in a long queue is asked about rarely.
    second = NOON + first + 2 * first
    assert w.handle(row, {"kind": "tick", "at": second - 1}, second - 1).jobs == []
    assert [j["kind"] for j in w.handle(row, {"kind": "tick", "at": second}, second).jobs] == ["probe"]
    w.handle(row, outcome(job, "accepted", provider_message_id="wamid.1"), second + 1)
    assert all(j["kind"] != "probe" for j in w.handle(row, {"kind": "tick", "at": second + 99 * first},
                                                       second + 99 * first).jobs)


def test_a_failed_receipt_that_overtakes_the_acceptance_still_makes_the_message_fall_back(
        config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    failed = {"kind": "receipt", "command_id": "rf", "contact_id": job["contact_id"], "message_id": job["message_id"],
              "status": "failed", "provider_message_id": "wamid.7", "code": "131026", "at": NOON + 1}
    assert event_types(w.handle(row, failed, NOON + 1)) == ["Message.Failed"]
    accepted = w.handle(row, outcome(job, "accepted", provider_message_id="wamid.7"), NOON + 2)
    assert "Message.FallbackTriggered" in event_types(accepted)
    [sms] = accepted.jobs
    assert sms["channel"] == "sms"


def test_a_failed_receipt_of_another_send_does_not_undo_an_acceptance(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    stray = {"kind": "receipt", "command_id": "rf", "contact_id": job["contact_id"], "message_id": job["message_id"],
             "status": "failed", "provider_message_id": "wamid.other", "code": "131026", "at": NOON + 1}
    w.handle(row, stray, NOON + 1)
    accepted = w.handle(row, outcome(job, "accepted", provider_message_id="wamid.7"), NOON + 2)
    assert "Message.FallbackTriggered" not in event_types(accepted)
    assert accepted.jobs == []


@pytest.mark.parametrize("answer", ["retry_later", "unknown", "permanent_failure"])
def test_receipts_that_overtake_a_failed_answer_make_it_an_acceptance_not_a_retry(
        config: PipelineConfig, answer: str) -> None:
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    read = {"kind": "receipt", "command_id": "rr", "contact_id": job["contact_id"], "message_id": job["message_id"],
            "status": "read", "provider_message_id": "wamid.8", "at": NOON + 1}
    assert event_types(w.handle(row, read, NOON + 1)) == ["Message.Read"]
    late = w.handle(row, outcome(job, answer, maybe_sent=True), NOON + 4)
    assert event_types(late) == ["Message.AcceptedByProvider"]
    assert late.jobs == []
    assert late.events[0].event.provider_message_id == "wamid.8"


def test_default_quiet_hours_apply_in_the_recipients_own_zone(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    tokyo = contact_command()
    tokyo["contact"]["attributes"]["timezone"] = "Asia/Tokyo"
    w.handle(row, tokyo, NOON)  # 12:00 UTC is 21:00 in Tokyo: not quiet yet
    assert w.handle(row, request("t-1"), NOON).jobs
    late = NOON + 2 * 3600  # 23:00 in Tokyo, 14:00 in UTC
    deferred = w.handle(row, request("t-2"), late)
    assert "Message.Deferred" in event_types(deferred)


def test_media_rides_as_a_template_header_or_as_a_captioned_message(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    photo = {"kind": "image", "link": "https://example.com/parcel.jpg"}
    job = w.handle(row, request("o-1", media=photo), NOON).jobs[0]
    assert job["content"]["header"] == photo
    w.handle(row, outcome(job, "accepted", provider_message_id="wamid.1"), NOON)
    inbound = {"kind": "inbound", "command_id": "i", "tenant": "acme", "contact_id": job["contact_id"],
               "channel": "whatsapp", "provider_message_id": "wamid.in", "address": "+4917000000001", "at": NOON}
    w.handle(row, inbound, NOON)
    free = w.handle(row, request("o-2", template=None, body="Your parcel", media=photo), NOON + 1).jobs[0]
    assert free["content"] == {"type": "media", **photo, "caption": "Your parcel"}


def test_bad_media_is_refused_with_the_reason(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    effects = w.handle(row, request("o-1", media={"kind": "hologram", "link": "x"}), NOON)
    [suppressed] = [e.event for e in effects.events if type(e.event).__qualname__ == "Message.Suppressed"]
    assert suppressed.reason.value == "template_unavailable"
    assert "media kind must be one of" in suppressed.detail


def test_a_message_past_its_not_after_expires_instead_of_going_late(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    first = w.handle(row, request("o-1"), NOON).jobs[0]
    w.handle(row, request("o-2", not_after="2026-11-25T12:00:30+00:00"), NOON + 1)
    late = w.handle(row, outcome(first, "accepted", provider_message_id="wamid.1"), NOON + 60)
    assert late.jobs == []
    assert "Message.Expired" in event_types(late)


def test_a_provider_opt_out_revokes_the_contacts_consent(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    consent = {"kind": "consent", "command_id": "g", "tenant": "acme", "contact_id": contact_command()["contact_id"],
               "action": "grant", "channel": "whatsapp", "category": "marketing"}
    w.handle(row, contact_command(), NOON)
    w.handle(row, consent, NOON)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    effects = w.handle(row, outcome(job, "permanent_failure", consent_revoked=True,
                                    error={"code": "21610", "message": "unsubscribed"}), NOON + 1)
    assert "Contact.ConsentRevoked" in event_types(effects)


def test_a_failed_receipt_saying_the_user_stopped_marketing_revokes_only_marketing(config: PipelineConfig) -> None:
    row, w = ContactRow(), writer(config)
    contact = contact_command()["contact_id"]
    w.handle(row, contact_command(), NOON)
    for category in ("marketing", "utility"):
        w.handle(row, {"kind": "consent", "command_id": f"g-{category}", "tenant": "acme", "contact_id": contact,
                       "action": "grant", "channel": "whatsapp", "category": category}, NOON)
    job = w.handle(row, request("o-1"), NOON).jobs[0]
    w.handle(row, outcome(job, "accepted", provider_message_id="wamid.7"), NOON + 1)
    failed = {"kind": "receipt", "command_id": "rf", "contact_id": contact, "message_id": job["message_id"],
              "status": "failed", "provider_message_id": "wamid.7", "code": "131050", "outcome": "permanent_failure",
              "consent_revoked": "marketing", "at": NOON + 2}
    effects = w.handle(row, failed, NOON + 2)
    assert event_types(effects).count("Contact.ConsentRevoked") == 1
    assert row.contact is not None
    assert not row.contact.has_consent(Channel.WHATSAPP, ConsentCategory.MARKETING)
    assert row.contact.has_consent(Channel.WHATSAPP, ConsentCategory.UTILITY)
    assert "Contact.ConsentRevoked" not in event_types(w.handle(row, {**failed, "command_id": "rf2"}, NOON + 3))


# SMS through Twilio, whose driver sends text only; order_shipped has a text in two of its three locales.
TEXTS = b'text = { en = "Order {{ order_id }} shipped", de = "Bestellung {{ order_id }}" }'
TWILIO_SMS = PIPELINE.replace(b'sms-gateway"\ndriver = "inprocess"', b'sms-gateway"\ndriver = "sms"') \
    .replace(b'locales = ["en", "pt", "de"]', b'locales = ["en", "pt", "de"]\n' + TEXTS)


def test_on_a_text_only_channel_a_template_goes_as_its_text_in_the_best_locale() -> None:
    config = load_bytes(Path("test-pipeline.toml"), TWILIO_SMS)
    row, w = ContactRow(), writer(config)
    job = w.handle(row, request("o-1", locale="de_AT"), NOON).jobs[0]
    assert job["content"]["type"] == "template"  # WhatsApp takes the approved template
    [sms] = w.handle(row, outcome(job, "permanent_failure", error={"code": "131026", "message": "x"}), NOON + 1).jobs
    assert sms["channel"] == "sms"
    assert sms["content"] == {"type": "text", "body": "Bestellung o-1"}  # de_AT -> de


def test_a_template_without_text_is_dead_lettered_at_a_text_only_channel_with_the_reason() -> None:
    config = load_bytes(Path("test-pipeline.toml"), TWILIO_SMS)
    row, w = ContactRow(), writer(config)
    [job] = w.handle(row, request("p-1", template="promo", parameters={}), NOON).jobs
    fell = w.handle(row, outcome(job, "permanent_failure", error={"code": "131026", "message": "x"}), NOON + 1)
    assert (fell.jobs, event_types(fell)[-1]) == ([], "Message.DeadLettered")
    assert fell.dead_letters[0]["reason"] == \
        "template 'promo' has no text for a channel that sends text only (declare its `text`)"
