"""The callback feeder's pure parts: the URL registry fold, status events as callbacks, secrets, offsets, the CLI."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from eventsourcing.domain import AggregateEvent

from aggregates import (
    CallbackKind,
    Channel,
    EventRecord,
    FailureClass,
    Message,
    MessageCategory,
    RateLimitTier,
    ReceiptStatus,
    SwitchboardAggregate,
    Tenant,
    to_record,
)
from connectors._feeder_events import RecentMap, json_safe, status_record
from connectors.callback_feeder import (
    STATUS_EVENT_TYPES,
    CallbackRegistry,
    CallbackSecrets,
    FeederConfig,
    OffsetTracker,
    secret_env_var,
)
from schemas import DecodedEvent, decode, default_registry, encode, make_envelope
from switchboard.cli import main

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TENANT = str(Tenant.create_id("acme"))


def wire(event_type: str, event: dict[str, Any]) -> DecodedEvent:
    """The event as a consumer sees it: encoded and decoded with the real codec."""
    decoded = decode(encode(event, event_type))
    assert isinstance(decoded, DecodedEvent)
    return decoded


def records_of(aggregate: SwitchboardAggregate) -> list[EventRecord]:
    """The aggregate's new events as Avro records."""
    events = aggregate.collect_events()
    assert all(isinstance(e, AggregateEvent) for e in events)
    return [to_record(aggregate, cast(AggregateEvent, e)) for e in events]


def tenant_event(event_type: str, version: int, tenant_id: str = TENANT, **fields: Any) -> DecodedEvent:
    envelope = make_envelope(aggregate_type="Tenant", aggregate_id=tenant_id, aggregate_version=version,
                             occurred_at=AT, tenant_id=tenant_id)
    return wire(event_type, {"envelope": envelope, **fields})


# --- the registry ------------------------------------------------------------------------------------------------


def test_registry_is_the_fold_of_set_and_removed_urls() -> None:
    registry = CallbackRegistry.fold([
        tenant_event("TenantRegistered", 1, slug="acme", name="Acme", rate_limit_tier="sandbox"),
        tenant_event("CallbackUrlSet", 2, kind="message_status", url="https://acme.example/v1"),
        tenant_event("CallbackUrlSet", 3, kind="template_status", url="https://acme.example/templates"),
        tenant_event("CallbackUrlSet", 4, kind="message_status", url="https://acme.example/v2"),
        tenant_event("CallbackUrlRemoved", 5, kind="template_status"),
    ])
    assert registry.url(TENANT) == "https://acme.example/v2"
    assert registry.url(TENANT, CallbackKind.TEMPLATE_STATUS) is None
    assert dict(registry.urls(TENANT)) == {CallbackKind.MESSAGE_STATUS: "https://acme.example/v2"}
    assert registry.url("another-tenant") is None


def test_registry_skips_redeliveries_by_version() -> None:
    registry = CallbackRegistry()
    assert registry.apply(tenant_event("CallbackUrlSet", 1, kind="message_status", url="https://a.example/1"))
    assert registry.apply(tenant_event("CallbackUrlRemoved", 2, kind="message_status"))
    assert not registry.apply(tenant_event("CallbackUrlSet", 1, kind="message_status", url="https://a.example/1"))
    assert registry.url(TENANT) is None


def test_removing_the_last_url_forgets_the_tenant_and_other_tenants_are_apart() -> None:
    other = str(Tenant.create_id("globex"))
    registry = CallbackRegistry.fold([
        tenant_event("CallbackUrlSet", 1, kind="message_status", url="https://acme.example/cb"),
        tenant_event("CallbackUrlSet", 1, tenant_id=other, kind="message_status", url="https://globex.example/cb"),
        tenant_event("CallbackUrlRemoved", 2, kind="message_status"),
    ])
    assert dict(registry.urls(TENANT)) == {}
    assert registry.url(other) == "https://globex.example/cb"


def test_registry_agrees_with_the_tenant_aggregate() -> None:
    tenant = Tenant.register(slug="acme", name="Acme")
    tenant.set_callback_url(CallbackKind.MESSAGE_STATUS, "https://acme.example/one")
    tenant.set_callback_url(CallbackKind.INBOUND_MESSAGE, "https://acme.example/inbound")
    tenant.change_rate_limit_tier(RateLimitTier.HIGH)
    tenant.set_callback_url(CallbackKind.MESSAGE_STATUS, "https://acme.example/two")
    tenant.remove_callback_url(CallbackKind.INBOUND_MESSAGE)
    registry = CallbackRegistry.fold(wire(r.event_type, r.event) for r in records_of(tenant))
    assert dict(registry.urls(tenant.tenant_id)) == dict(tenant.callback_urls)


# --- status events as callback events ------------------------------------------------------------------------------


def message_records() -> list[DecodedEvent]:
    message = Message.request(tenant_id=TENANT, contact_id=uuid4(), category=MessageCategory.UTILITY,
                              idempotency_key="k-1", body="Your order shipped", preferred_channel=Channel.WHATSAPP)
    message.render("Your order shipped")
    message.route(Channel.WHATSAPP, "phone-1", "+4712345678")
    message.attempt_dispatch()
    message.accept("wamid.1")
    message.record_receipt(ReceiptStatus.SENT, "wamid.1", AT)
    message.record_receipt(ReceiptStatus.DELIVERED, "wamid.1", AT + timedelta(seconds=2))
    message.record_failure(FailureClass.PERMANENT, AT + timedelta(seconds=3), provider_code="131026")
    return [wire(r.event_type, r.event) for r in records_of(message)]


def test_the_status_kinds_are_message_events_of_the_schema_registry() -> None:
    registry = default_registry()
    assert {registry.latest(kind).family for kind in STATUS_EVENT_TYPES} == {"message"}
    assert len(STATUS_EVENT_TYPES) == 9


def test_only_status_events_become_callbacks_with_the_message_version_as_sequence() -> None:
    records = message_records()
    callbacks = [r.callback for r in map(status_record, records) if r is not None]
    assert [(c.event_type, c.sequence) for c in callbacks] == [
        ("MessageAcceptedByProvider", 5), ("MessageSent", 6), ("MessageDelivered", 7), ("MessageFailed", 8)]
    first = records[4].payload["envelope"]
    assert {c.message_id for c in callbacks} == {first["aggregate_id"]}
    assert {c.tenant_id for c in callbacks} == {TENANT}
    assert callbacks[0].occurred_at == first["occurred_at"]


def test_a_callback_carries_the_event_fields_as_json_and_the_envelope_id_for_dedupe() -> None:
    delivered = message_records()[6]
    record = status_record(delivered)
    assert record is not None
    assert record.event_id == delivered.payload["envelope"]["event_id"]
    payload = json.loads(record.callback.to_json())["payload"]
    assert payload["provider_message_id"] == "wamid.1"
    assert payload["provider_at"] == (AT + timedelta(seconds=2)).isoformat()
    assert "envelope" not in payload
    assert "+4712345678" not in record.callback.to_json().decode()  # the address is on MessageRouted only


def test_json_safe_converts_nested_timestamps() -> None:
    assert json_safe({"at": AT, "items": [AT, 1, None]}) == {"at": AT.isoformat(), "items": [AT.isoformat(), 1, None]}


def test_recent_map_keeps_only_the_newest_keys() -> None:
    recent: RecentMap[str, int] = RecentMap(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # rewriting makes it the newest again
    recent.put("c", 4)
    assert "b" not in recent
    assert (recent.get("a"), recent.get("c"), len(recent)) == (3, 4, 2)
    with pytest.raises(ValueError, match="capacity"):
        RecentMap(0)


# --- signing secrets -----------------------------------------------------------------------------------------------


def test_secret_variable_name_is_the_tenant_id_upper_case_with_underscores() -> None:
    assert secret_env_var("0b7c-4e1a.acme") == "SWITCHBOARD_CALLBACK_SECRET_0B7C_4E1A_ACME"


def revealed(secrets: CallbackSecrets, tenant_id: str) -> str | None:
    found = secrets.lookup(tenant_id)
    return None if found is None else found.reveal()


def test_environment_wins_over_the_file_and_both_are_stripped(tmp_path: Path) -> None:
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / TENANT).write_text("  from-file\n", encoding="utf-8")
    from_file = CallbackSecrets(tmp_path, environ={})
    from_env = CallbackSecrets(tmp_path, environ={secret_env_var(TENANT): " from-env \n"})
    assert revealed(from_file, TENANT) == "from-file"
    assert revealed(from_env, TENANT) == "from-env"


def test_blank_or_missing_secrets_are_none(tmp_path: Path) -> None:
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "blank").write_text(" \n", encoding="utf-8")
    secrets = CallbackSecrets(tmp_path, environ={secret_env_var("blank"): "   "})
    assert secrets.lookup("blank") is None
    assert secrets.lookup("nobody") is None
    assert CallbackSecrets(None, environ={}).lookup(TENANT) is None


def test_a_rotated_secret_file_is_read_on_the_next_lookup(tmp_path: Path) -> None:
    path = tmp_path / "callbacks" / TENANT
    path.parent.mkdir()
    path.write_text("old", encoding="utf-8")
    secrets = CallbackSecrets(tmp_path, environ={})
    assert revealed(secrets, TENANT) == "old"
    path.write_text("new", encoding="utf-8")
    assert revealed(secrets, TENANT) == "new"


@pytest.mark.parametrize("tenant_id", ["..", ".", "../callbacks/x", "a/b", "a\\b", ""])
def test_tenant_ids_never_name_a_file_outside_the_directory(tmp_path: Path, tenant_id: str) -> None:
    (tmp_path / "x").write_text("outside", encoding="utf-8")
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "x").write_text("inside", encoding="utf-8")
    assert CallbackSecrets(tmp_path / "callbacks" / "..", environ={}).lookup(tenant_id) is None


def test_secrets_never_show_in_repr_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = CallbackSecrets(tmp_path, environ={secret_env_var(TENANT): "s3cret-value"})
    with caplog.at_level(logging.DEBUG):
        found = secrets.lookup(TENANT)
    assert "s3cret-value" not in repr(secrets) + repr(found) + str(found) + caplog.text


# --- the offset tracker --------------------------------------------------------------------------------------------


def test_commits_stop_at_the_first_unfinished_record() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12, 14):  # 13 is a transaction marker: never delivered to us
        tracker.start("p0", offset)
    tracker.finish("p0", 11)
    tracker.finish("p0", 12)
    assert tracker.advanced() == {}
    tracker.finish("p0", 10)
    assert tracker.advanced() == {"p0": 13}
    tracker.mark_committed({"p0": 13})
    assert tracker.advanced() == {}
    tracker.finish("p0", 14)
    assert tracker.advanced() == {"p0": 15}
    assert tracker.pending("p0") == 0


def test_partitions_are_independent_and_forgotten_ones_ignore_late_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p0", 0)
    tracker.start("p1", 0)
    tracker.start("p1", 1)
    tracker.finish("p1", 0)
    assert tracker.advanced() == {"p1": 1}
    tracker.forget("p0")
    tracker.finish("p0", 0)  # a delivery that ended after its partition was revoked
    assert "p0" not in tracker.advanced()
    assert tracker.pending("p1") == 1


def test_finishing_a_record_before_it_is_started_does_not_count() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p0", 1)
    tracker.finish("p0", 2)
    tracker.start("p0", 2)
    tracker.finish("p0", 1)
    assert tracker.advanced() == {"p0": 2}
    assert tracker.pending("p0") == 1


def test_offsets_must_increase_within_a_partition() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p0", 5)
    tracker.finish("p0", 5)
    with pytest.raises(ValueError, match="not after 5"):
        tracker.start("p0", 5)
    tracker.forget("p0")
    tracker.start("p0", 5)  # re-read after a revoke and reassignment


# --- configuration and command line ------------------------------------------------------------------------------


def test_config_names_the_prefixed_topics() -> None:
    config = FeederConfig("127.0.0.1:1", topic_prefix="t-")
    assert (config.message_topic, config.tenant_topic, config.dead_letter_topic) == (
        "t-sb.events.message", "t-sb.events.tenant", "t-sb.deadletters")


def test_callbacks_command_needs_a_bootstrap(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["callbacks", "--secrets-dir", "/nonexistent"]) == 2
    assert "--bootstrap" in capsys.readouterr().err
