"""The template gate: the Template events folded, and which template sends it refuses (none it does not know)."""

from __future__ import annotations

from typing import Any

import pytest

from aggregates import Channel, Template, to_record
from schemas import DecodedEvent, decode, encode
from streams.pipeline._template_gate import TemplateGate
from streams.pipeline._templates import TemplateRow, TemplateWriter

TEMPLATE_ID = str(Template.create_id("acme", Channel.WHATSAPP, "order_shipped"))


def command(kind: str = "template_update", **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "v": 1, "command_id": "c", "aggregate_id": TEMPLATE_ID, "tenant": "acme",
            "channel": "whatsapp", "name": "order_shipped", "template_id": "987", **fields}


def version(body: str = "Order {{1}} has shipped", locale: str = "en") -> dict[str, Any]:
    return command("template_version", category="utility", locale=locale, body=body)


def review(status: str, at: str, locale: str = "en", reason: str | None = None) -> dict[str, Any]:
    return command(update="status", status=status, language=locale, at=at, reason=reason)


def events(row: TemplateRow, *commands: dict[str, Any]) -> list[DecodedEvent]:
    """The writer's events for the commands, as the gate reads them off sb.events.template."""
    decoded = []
    for one in commands:
        effects = TemplateWriter().handle(row, one)
        assert effects.template is not None
        assert not effects.dead_letters, effects.dead_letters
        for event in effects.events:
            record = to_record(effects.template, event)
            value = decode(encode(record.event, record.event_type))
            assert isinstance(value, DecodedEvent)
            decoded.append(value)
    return decoded


def refusal(gate: TemplateGate, locale: str = "en", name: str = "order_shipped") -> str | None:
    return gate.refusal("acme", Channel.WHATSAPP, name, locale)


def test_a_template_or_language_no_event_names_is_not_refused() -> None:
    gate = TemplateGate.fold(events(TemplateRow(), version(), review("APPROVED", "2026-03-01T09:00:00+00:00")))
    assert refusal(gate, name="never_heard_of") is None
    assert refusal(gate, locale="de") is None
    assert gate.refusal("globex", Channel.WHATSAPP, "order_shipped", "en") is None
    assert gate.refusal("acme", Channel.SMS, "order_shipped", "en") is None


def test_an_approved_template_goes_and_a_paused_one_is_refused_until_it_is_reinstated() -> None:
    row, gate = TemplateRow(), TemplateGate()
    for event in events(row, version(), review("APPROVED", "2026-03-01T09:00:00+00:00")):
        gate.apply(event)
    assert refusal(gate) is None
    [paused] = events(row, review("PAUSED", "2026-03-01T10:00:00+00:00", reason="LOW_QUALITY"))
    assert gate.apply(paused)
    assert refusal(gate) == ("template 'order_shipped' (en) is PAUSED (LOW_QUALITY) at the provider: none of its 1 "
                             "version(s) may be sent")
    assert refusal(gate, locale="en-GB") is None  # another language
    assert refusal(gate, locale="not a locale") is None  # nothing the aggregate could hold: the provider decides
    [reinstated] = events(row, review("REINSTATED", "2026-03-01T11:00:00+00:00"))
    gate.apply(reinstated)
    assert refusal(gate) is None


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "DISABLED"])
def test_a_language_with_no_version_the_provider_allows_is_refused(status: str) -> None:
    row = TemplateRow()
    published = events(row, version())
    reviewed = [] if status == "PENDING" else events(row, review(status, "2026-03-01T09:00:00+00:00"))
    assert f"is {status}" in (refusal(TemplateGate.fold([*published, *reviewed])) or "")


def test_an_edit_pending_review_leaves_the_approved_version_sendable() -> None:
    row = TemplateRow()
    history = events(row, version(), review("APPROVED", "2026-03-01T09:00:00+00:00"),
                     version("Order {{1}} is on its way"))
    assert refusal(TemplateGate.fold(history)) is None


def test_redeliveries_and_other_aggregates_change_nothing_and_a_gap_keeps_what_was_known() -> None:
    row = TemplateRow()
    registered, published, approved = events(row, version(), review("APPROVED", "2026-03-01T09:00:00+00:00"))
    gate = TemplateGate.fold([registered, published])
    assert not gate.apply(published)  # a redelivery
    [paused] = events(row, review("PAUSED", "2026-03-01T10:00:00+00:00"))
    assert not gate.apply(paused)  # version 4 after 2: version 3 (the approval) was never seen
    assert "is PENDING" in (refusal(gate) or "")
    contact_event = {**approved.payload, "envelope": {**approved.payload["envelope"], "aggregate_type": "Contact"}}
    assert not gate.apply(DecodedEvent(approved.event_type, approved.schema_id, approved.version,
                                       approved.current_version, contact_event))
    assert len(gate) == 1


def test_once_caught_up_it_names_what_it_refuses_and_logs_each_review(caplog: pytest.LogCaptureFixture) -> None:
    row = TemplateRow()
    gate = TemplateGate.fold(events(row, version(), review("PAUSED", "2026-03-01T09:00:00+00:00")))
    assert gate.refused() == ["order_shipped (en)"]
    assert not caplog.records  # the history is not told as news
    gate.caught_up()
    [reinstated] = events(row, review("REINSTATED", "2026-03-01T10:00:00+00:00"))
    [disabled] = events(row, review("DISABLED", "2026-03-01T11:00:00+00:00"))
    with caplog.at_level("INFO"):
        gate.apply(reinstated)
        gate.apply(disabled)
    assert [(r.levelname, r.getMessage()) for r in caplog.records[-2:]] == [
        ("INFO", "template gate: order_shipped (en) may be sent"),
        ("WARNING", "template gate: order_shipped (en) may not be sent now: its messages fall back without a "
                    "request")]
    assert "not sendable now (their messages fall back): order_shipped (en)" in caplog.records[0].getMessage()


def test_a_gate_that_forgets_refuses_nothing() -> None:
    gate = TemplateGate.fold(events(TemplateRow(), version(), review("PAUSED", "2026-03-01T09:00:00+00:00")))
    gate.forget()
    assert (refusal(gate), gate.refused(), len(gate)) == (None, [], 0)
