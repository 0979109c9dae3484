"""The template writer's decisions, command by command, without Kafka; and where its topics come from."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from aggregates import Channel, Template, to_record
from schemas import DecodedEvent, decode, encode, route
from streams.pipeline._commands import CommandError
from streams.pipeline._templates import (
    TemplateEffects,
    TemplateRow,
    TemplateTopics,
    TemplateWriter,
    check_template_command,
)
from streams.pipeline.app import COMMAND_TOPIC_CONFIG, PipelineSettings
from switchboard.topics import AUDIT_LOG_CONFIG

TEMPLATE_ID = str(Template.create_id("acme", Channel.WHATSAPP, "order_shipped"))


def command(kind: str = "template_update", **fields: Any) -> dict[str, Any]:
    base = {"kind": kind, "v": 1, "command_id": f"cmd-{len(fields)}", "aggregate_id": TEMPLATE_ID, "tenant": "acme",
            "channel": "whatsapp", "name": "order_shipped", "template_id": "987", "business_account_id": "waba"}
    return {**base, **fields}


def status(value: str, at: str = "2026-03-01T09:30:00+00:00", language: str | None = "en",
           **fields: Any) -> dict[str, Any]:
    return command(update="status", status=value, language=language, at=at, **fields)


def category(new: str, previous: str | None = None, at: str = "2026-03-01T09:30:00+00:00") -> dict[str, Any]:
    return command(update="category", new_category=new, previous_category=previous, language="en", at=at)


def quality(new: str, previous: str | None = None, at: str = "2026-03-01T09:30:00+00:00",
            language: str | None = "en") -> dict[str, Any]:
    return command(update="quality", new_quality=new, previous_quality=previous, language=language, at=at)


def edit(body: str, at: str = "2026-03-01T09:30:00+00:00", language: str | None = "en",
         **fields: Any) -> dict[str, Any]:
    return command(update="components", body=body, language=language, at=at, **fields)


def version(body: str = "Order {{1}} has shipped", locale: str = "en", **fields: Any) -> dict[str, Any]:
    return command("template_version", category="utility", locale=locale, body=body, **fields)


def types(effects: TemplateEffects) -> list[str]:
    return [to_record(effects.template, event).event_type for event in effects.events]  # type: ignore[arg-type]


@pytest.fixture
def published() -> TemplateRow:
    """A row whose template has version 1 in English, pending review."""
    row = TemplateRow()
    assert types(TemplateWriter().handle(row, version())) == ["TemplateRegistered", "TemplateVersionPublished"]
    return row


def test_a_version_registers_the_template_once_and_the_same_content_again_changes_nothing() -> None:
    row, writer = TemplateRow(), TemplateWriter()
    writer.handle(row, version())
    assert writer.handle(row, version()).events == []
    assert types(writer.handle(row, version("Order {{1}} is on its way"))) == ["TemplateVersionPublished"]
    assert row.template is not None
    assert [v.version for v in row.template.versions["en"]] == [1, 2]
    assert str(row.template.id) == TEMPLATE_ID


def test_a_review_changes_the_newest_version_of_its_language_and_a_repeat_adds_nothing(published: TemplateRow) -> None:
    writer = TemplateWriter()
    effects = writer.handle(published, status("REJECTED", reason="INVALID_FORMAT"))
    assert types(effects) == ["TemplateApprovalStatusChanged"]
    [event] = effects.events
    assert (event.locale, event.version, event.status.value, event.reason) == ("en", 1, "REJECTED", "INVALID_FORMAT")
    assert writer.handle(published, status("REJECTED", reason="INVALID_FORMAT")).events == []
    writer.handle(published, version("Order {{1}} shipped today"))
    approved = writer.handle(published, status("APPROVED", at="2026-03-01T10:00:00+00:00"))
    assert [(e.version, e.status.value) for e in approved.events] == [(2, "APPROVED")]
    assert published.template is not None
    assert published.template.sendable_version("en") is not None


def test_a_review_older_than_the_last_one_applied_is_stale(published: TemplateRow) -> None:
    writer = TemplateWriter()
    writer.handle(published, status("APPROVED", at="2026-03-01T09:00:00+00:00"))
    writer.handle(published, status("PAUSED", at="2026-03-02T09:00:00+00:00"))
    assert writer.handle(published, status("APPROVED", at="2026-03-01T09:00:00+00:00")).events == []
    assert published.template is not None
    assert published.template.template_version("en", 1).status.value == "PAUSED"


def test_quality_ratings_are_recorded_once_and_an_older_one_does_not_undo_a_newer(published: TemplateRow) -> None:
    writer = TemplateWriter()
    assert types(writer.handle(published, quality("YELLOW", "GREEN"))) == ["TemplateQualityChanged"]
    assert writer.handle(published, quality("YELLOW", "GREEN")).events == []  # the same webhook again
    assert writer.handle(published, quality("RED", at="2026-03-01T09:00:00+00:00")).events == []  # older
    [whole] = writer.handle(published, quality("GREEN", language=None)).events  # the template as a whole
    assert published.template is not None
    assert published.template.quality == {"en": "YELLOW", "": "GREEN"}
    assert whole.locale is None


def test_an_edit_made_at_the_provider_is_a_new_version_pending_review_and_our_own_content_is_none(
        published: TemplateRow) -> None:
    writer = TemplateWriter()
    assert writer.handle(published, edit("Order {{1}} has shipped")).events == []  # the provider echoes ours
    [event] = writer.handle(published, edit("Order {{1}} is on its way", footer="Reply STOP to opt out")).events
    assert (event.locale, event.version, event.body, event.header, event.footer, event.parameters) == (
        "en", 2, "Order {{1}} is on its way", None, "Reply STOP to opt out", ("1",))
    assert published.template is not None
    assert published.template.template_version("en", 2).status.value == "PENDING"
    approved = writer.handle(published, status("APPROVED", at="2026-03-01T10:00:00+00:00"))
    assert [(e.version, e.status.value) for e in approved.events] == [(2, "APPROVED")]


def test_an_edit_older_than_the_last_edit_applied_is_stale(published: TemplateRow) -> None:
    writer = TemplateWriter()
    writer.handle(published, edit("Order {{1}} is on its way", at="2026-03-02T09:00:00+00:00"))
    assert writer.handle(published, edit("Order {{1}} left us", at="2026-03-01T12:00:00+00:00")).events == []
    assert published.template is not None
    assert [v.body for v in published.template.versions["en"]] == ["Order {{1}} has shipped",
                                                                   "Order {{1}} is on its way"]


def test_a_review_that_overtook_its_edit_is_carried_to_the_edited_version(published: TemplateRow) -> None:
    writer = TemplateWriter()
    writer.handle(published, status("APPROVED", at="2026-03-01T09:00:00+00:00"))
    writer.handle(published, status("PAUSED", at="2026-03-01T11:00:00+00:00", reason="LOW_QUALITY"))
    effects = writer.handle(published, edit("Order {{1}} is on its way", at="2026-03-01T10:00:00+00:00"))
    assert [(type(e).__name__, e.version) for e in effects.events] == [("VersionPublished", 2),
                                                                       ("ApprovalStatusChanged", 2)]
    assert (effects.events[1].status.value, effects.events[1].reason) == ("PAUSED", "LOW_QUALITY")


def test_an_edit_after_the_last_review_stays_pending(published: TemplateRow) -> None:
    writer = TemplateWriter()
    writer.handle(published, status("APPROVED", at="2026-03-01T09:00:00+00:00"))
    effects = writer.handle(published, edit("Order {{1}} is on its way", at="2026-03-01T10:00:00+00:00"))
    assert types(effects) == ["TemplateVersionPublished"]
    assert published.template is not None
    assert published.template.sendable_version("en") == published.template.template_version("en", 1)


def test_webhook_languages_are_matched_with_the_published_locale() -> None:
    row, writer = TemplateRow(), TemplateWriter()
    writer.handle(row, version(locale="pt_BR"))
    [event] = writer.handle(row, status("APPROVED", language="pt-BR")).events
    assert event.locale == "pt_BR"


@pytest.mark.parametrize(("update", "reason"), [
    (status("APPROVED"), "was never registered"),
    (status("APPROVED", language=None), "needs the template's language"),
    (status("SOMETHING_NEW"), "ValueError"),
    (category("PROMOTIONAL"), "ValueError"),
    ({**category("MARKETING"), "name": "other"}, "aggregate_id is not"),
    ({**category("MARKETING"), "update": "buttons"}, "unknown template update"),
    (edit("Order {{1}} is on its way"), "was never registered"),
    (edit("Order {{1}} is on its way", language=None), "a components update needs the template's language"),
    (quality("RED"), "was never registered"),
    (quality("PURPLE"), "ValueError"),
    (version(body="Hi {{2}}"), "positional parameters"),
    (version(name="Order Shipped", aggregate_id=str(Template.create_id("acme", Channel.WHATSAPP, "Order Shipped"))),
     "lowercase letters"),
])
def test_what_cannot_be_applied_is_a_dead_letter_and_changes_nothing(update: dict[str, Any], reason: str) -> None:
    row = TemplateRow()
    effects = TemplateWriter().handle(row, update)
    assert effects.events == []
    [letter] = effects.dead_letters
    assert reason in letter["reason"]
    assert (letter["stage"], letter["command_id"]) == ("templates", update["command_id"])
    assert row.template is None


def test_a_status_for_a_language_without_versions_is_a_dead_letter(published: TemplateRow) -> None:
    effects = TemplateWriter().handle(published, status("APPROVED", language="de"))
    assert (effects.events, "has no version for de" in effects.dead_letters[0]["reason"]) == ([], True)


def test_a_recategorisation_keeps_the_previous_category_and_a_repeat_adds_nothing(published: TemplateRow) -> None:
    writer = TemplateWriter()
    [event] = writer.handle(published, category("MARKETING", "UTILITY")).events
    assert (event.previous_category.value, event.new_category.value, event.locale) == ("utility", "marketing", "en")
    assert writer.handle(published, category("MARKETING", "UTILITY")).events == []
    assert writer.handle(published, category("UTILITY", at="2026-02-01T00:00:00+00:00")).events == []  # stale


def test_an_unknown_template_is_registered_by_a_recategorisation() -> None:
    row, writer = TemplateRow(), TemplateWriter()
    effects = writer.handle(row, category("MARKETING", "UTILITY"))
    assert types(effects) == ["TemplateRegistered", "TemplateCategoryChanged"]
    assert effects.events[0].category.value == "utility"
    assert types(writer.handle(TemplateRow(), category("MARKETING"))) == ["TemplateRegistered"]


def test_every_event_encodes_and_routes_to_the_template_topic_by_aggregate_id(published: TemplateRow) -> None:
    row = pickle.loads(pickle.dumps(published))  # as the table stores it
    effects = TemplateWriter().handle(row, status("APPROVED"))
    effects.events += TemplateWriter().handle(row, category("MARKETING")).events
    assert effects.template is not None
    for event in effects.events:
        record = to_record(effects.template, event)
        decoded = decode(encode(record.event, record.event_type))
        assert isinstance(decoded, DecodedEvent)
        assert decoded.payload["envelope"]["aggregate_version"] == event.originator_version
        where = route(record.event_type, record.event)
        assert (where.topic, where.key) == ("sb.events.template", TEMPLATE_ID)


@pytest.mark.parametrize(("value", "error"), [
    ([], "must be a JSON object"),
    ({"kind": "receipt"}, "unknown template command kind"),
    ({**version(), "v": 2}, "version 2 is not supported"),
    ({**status("APPROVED"), "aggregate_id": None}, "lacks aggregate_id"),
])
def test_unreadable_commands_are_refused(value: Any, error: str) -> None:
    with pytest.raises(CommandError, match=error):
        check_template_command(value)


def test_the_pipeline_creates_the_template_topics_and_table() -> None:
    settings = PipelineSettings(bootstrap="127.0.0.1:9", data_dir="/tmp/x", topic_prefix="p-")
    specs = {spec.name: spec for spec in settings.topic_specs()}
    topics = TemplateTopics("p-")
    assert (topics.commands, topics.events) == ("p-sb.commands.template", "p-sb.events.template")
    assert specs[topics.commands].config == COMMAND_TOPIC_CONFIG
    assert specs[topics.events].config == AUDIT_LOG_CONFIG
    assert settings.changelog("templates") in specs
    assert len({spec.partitions for spec in specs.values()}) == 1  # co-partitioned with the template table
