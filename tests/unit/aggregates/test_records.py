"""Aggregate events and Avro records: every event type maps both ways, field for field, symbol for symbol."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
from eventsourcing.domain import AggregateEvent

import aggregates
from aggregates import (
    AGGREGATE_EVENT_TYPES,
    ApprovalStatus,
    CallbackKind,
    Channel,
    ConsentCategory,
    Contact,
    FailureClass,
    FrequencyCap,
    Message,
    MessageCategory,
    Preferences,
    Pricing,
    QuietHours,
    RateLimitTier,
    ReceiptStatus,
    SwitchboardAggregate,
    Template,
    TemplateCategory,
    TemplateQuality,
    Tenant,
    from_record,
    to_record,
)
from schemas import EVENT_TOPICS, DecodedEvent, TraceContext, decode, default_registry, encode, route

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRACE = TraceContext("0af7651916cd43dd8448eb211c80319c", "order-42", None)


def _scenario() -> list[SwitchboardAggregate]:
    """One aggregate of each kind, taken through every event type it has."""
    tenant = Tenant.register(slug="acme", name="Acme")
    client_id, _ = tenant.add_api_client("backend", secret="x" * 32)
    tenant.revoke_api_client(client_id)
    tenant.change_rate_limit_tier(RateLimitTier.HIGH)
    tenant.set_callback_url(CallbackKind.MESSAGE_STATUS, "https://acme.example/cb")
    tenant.remove_callback_url(CallbackKind.MESSAGE_STATUS)
    contact = Contact.register(tenant_id=tenant.tenant_id, external_ref="crm-1", addresses={Channel.WHATSAPP: "47"})
    contact.grant_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "web_form", "form-1")
    contact.revoke_consent(Channel.WHATSAPP, ConsentCategory.MARKETING, "inbound_stop")
    contact.set_preferences(Preferences("en", Channel.WHATSAPP, QuietHours(1320, 420, "Europe/Oslo"),
                                        (FrequencyCap(MessageCategory.MARKETING, 2, 86400),)))
    contact.record_inbound(Channel.WHATSAPP, "wamid.in", "47", T0, "STOP")
    template = Template.register(tenant_id=tenant.tenant_id, name="code", category=TemplateCategory.AUTHENTICATION)
    template.publish_version("en", "Code {{1}}", header="Acme", footer="Do not share")
    template.set_approval_status("en", 1, ApprovalStatus.APPROVED)
    template.change_category(TemplateCategory.UTILITY, "en")
    template.rate_quality(TemplateQuality.YELLOW, "en", previous_quality=TemplateQuality.GREEN)
    return [tenant, contact, template, *_messages(contact)]


def _messages(contact: Contact) -> list[Message]:
    def request(key: str) -> Message:
        return Message.request(tenant_id=contact.tenant_id, contact_id=contact.id, category=MessageCategory.UTILITY,
                               idempotency_key=key, template_name="code", locale="en", parameters={"1": "123"},
                               preferred_channel=Channel.WHATSAPP, not_after=T0 + timedelta(hours=1))

    sent = request("sent")
    sent.render("Code 123", template_id=contact.id, template_version=1, locale="en")
    sent.route(Channel.WHATSAPP, "phone-1", "47")
    sent.attempt_dispatch()
    sent.accept("wamid.1")
    sent.record_receipt(ReceiptStatus.SENT, "wamid.1", T0, Pricing("PMP", "authentication", None))
    sent.record_receipt(ReceiptStatus.DELIVERED, "wamid.1", T0)
    sent.record_receipt(ReceiptStatus.READ, "wamid.1", T0)
    failing = request("failing")
    failing.render("Code 123")
    failing.defer(T0 + timedelta(hours=1), aggregates.DeferralReason.QUIET_HOURS, "22:00-07:00")
    failing.route(Channel.WHATSAPP, "phone-1", "47")
    failing.attempt_dispatch()
    failing.record_failure(FailureClass.THROTTLED, T0, provider_code="130429", retry_after_ms=1000)
    failing.schedule_retry(T0 + timedelta(seconds=1), FailureClass.THROTTLED)
    failing.fall_back(Channel.SMS, "throttled")
    failing.dead_letter("out of options")
    suppressed, expired = request("suppressed"), request("expired")
    suppressed.suppress(aggregates.SuppressionReason.NO_CONSENT)
    expired.expire("not_after passed")
    return [sent, failing, suppressed, expired]


def _all_records() -> list[tuple[SwitchboardAggregate, AggregateEvent, Any]]:
    rows = []
    for aggregate in _scenario():
        for event in aggregate.collect_events():
            assert isinstance(event, AggregateEvent)  # every event of our aggregates is one
            rows.append((aggregate, event, to_record(aggregate, event, TRACE)))
    return rows


def test_every_aggregate_family_event_type_has_an_event_class() -> None:
    families = {family for family, topic in EVENT_TOPICS.items() if topic.aggregate_type is not None}
    registry = default_registry()
    assert {t for t in registry.event_types if registry.latest(t).family in families} == AGGREGATE_EVENT_TYPES


def test_the_scenario_covers_every_aggregate_event_type() -> None:
    assert {record.event_type for _, _, record in _all_records()} == AGGREGATE_EVENT_TYPES


def test_events_survive_the_wire_unchanged() -> None:
    for aggregate, event, record in _all_records():
        data = encode(record.event, record.event_type)
        decoded = decode(data)
        assert isinstance(decoded, DecodedEvent)
        assert from_record(decoded.event_type, decoded.payload) == event, record.event_type
        family = default_registry().latest(record.event_type).family
        assert route(record.event_type, record.event).topic == EVENT_TOPICS[family].name
        assert record.event["envelope"]["tenant_id"] == aggregate.tenant_id


def test_records_carry_the_trace_and_a_redelivery_has_the_same_event_id() -> None:
    aggregate, event, record = _all_records()[3]
    again = to_record(aggregate, event)
    assert again.event["envelope"]["event_id"] == record.event["envelope"]["event_id"]
    assert record.event["envelope"]["trace_id"] == TRACE.trace_id
    assert record.event["envelope"]["correlation_id"] == "order-42"


def test_message_events_are_keyed_by_contact() -> None:
    for aggregate, _, record in _all_records():
        if isinstance(aggregate, Message):
            assert route(record.event_type, record.event).key == str(aggregate.contact_id)


def test_a_version_1_failure_becomes_an_event_with_the_v2_field_defaulted() -> None:
    failed = next(r for _, _, r in _all_records() if r.event_type == "MessageFailed")
    old = {k: v for k, v in failed.event.items() if k != "retry_after_ms"}
    decoded = decode(encode(old, "MessageFailed", version=1))
    assert isinstance(decoded, DecodedEvent)
    assert decoded.upcast
    event = from_record("MessageFailed", decoded.payload)
    assert isinstance(event, Message.Failed)
    assert event.retry_after_ms is None


def _avro_enums() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}

    def walk(schema: Any) -> None:
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
        elif isinstance(schema, dict):
            if schema["type"] == "enum":
                found[schema["name"].rsplit(".", 1)[-1]] = schema["symbols"]
            for field in schema.get("fields", []):
                walk(field["type"])
            for key in ("items", "values"):
                if key in schema:
                    walk(schema[key])

    for version in default_registry():
        walk(version.expanded)
    return found


@pytest.mark.parametrize(
    "enum",
    [Channel, MessageCategory, ConsentCategory, TemplateCategory, FailureClass, aggregates.SuppressionReason,
     aggregates.DeferralReason, aggregates.ParameterFormat, ApprovalStatus, RateLimitTier, CallbackKind],
)
def test_domain_enums_match_the_avro_symbols(enum: type[StrEnum]) -> None:
    assert [member.value for member in enum] == _avro_enums()[enum.__name__]


def test_event_fields_match_the_schema_fields() -> None:
    skip = {"originator_id", "originator_version", "timestamp", "originator_topic", "tenant_id"}
    for aggregate, event, record in _all_records():
        fields = {f.name for f in dataclasses.fields(event)} - skip
        if isinstance(aggregate, Message):
            fields.add("contact_id")
        schema_fields = {f["name"] for f in default_registry().latest(record.event_type).raw["fields"]} - {"envelope"}
        assert fields == schema_fields, record.event_type
