"""The committed registry: every schema file published once, under a stable id, with one shared envelope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import DEFAULT_ROOT, EVENT_TOPICS, Registry, RegistryError, UnknownEventType, default_registry, route
from schemas.golden import sample_event


def _files(root: Path) -> set[tuple[str, int]]:
    return {(p.parent.name, int(p.stem[1:])) for p in (root / "avro").glob("*/v*.avsc")}


def test_every_schema_file_is_published_under_a_unique_id() -> None:
    registry = default_registry()
    published = {(v.subject, v.version) for v in registry}
    assert published == _files(DEFAULT_ROOT)
    ids = [v.schema_id for v in registry]
    assert ids == list(range(1, len(ids) + 1))


def test_subjects_are_record_names_and_every_family_has_a_topic() -> None:
    for version in default_registry():
        assert version.subject == f"{version.raw['namespace']}.{version.raw['name']}"
        assert version.family in EVENT_TOPICS


def test_every_schema_has_the_same_envelope() -> None:
    envelopes = {json.dumps(v.raw["fields"][0], sort_keys=True) for v in default_registry()}
    assert len(envelopes) == 1
    fields = [f["name"] for f in json.loads(envelopes.pop())["type"]["fields"]]
    assert fields == [
        "event_id", "aggregate_type", "aggregate_id", "aggregate_version", "occurred_at",
        "tenant_id", "trace_id", "correlation_id", "causation_id",
    ]


def test_message_failed_has_a_second_version_with_an_optional_field() -> None:
    v1, v2 = default_registry().versions("MessageFailed")
    added = {f["name"] for f in v2.raw["fields"]} - {f["name"] for f in v1.raw["fields"]}
    assert added == {"retry_after_ms"}
    assert default_registry().latest("switchboard.message.MessageFailed") is v2


def test_unknown_event_types_are_named() -> None:
    with pytest.raises(UnknownEventType, match="MessageTeleported"):
        default_registry().latest("MessageTeleported")
    with pytest.raises(UnknownEventType, match="MessageFailed v9"):
        default_registry().version("MessageFailed", 9)


def test_an_edited_published_schema_stops_the_registry_loading(schema_root: Path) -> None:
    path = schema_root / "avro" / "switchboard.message.MessageSent" / "v1.avsc"
    schema = json.loads(path.read_text())
    schema["doc"] = "quietly edited"
    path.write_text(json.dumps(schema))
    with pytest.raises(RegistryError, match=r"switchboard\.message\.MessageSent v1: the published schema was edited"):
        Registry.load(schema_root)


def test_a_missing_schema_file_stops_the_registry_loading(schema_root: Path) -> None:
    (schema_root / "avro" / "switchboard.contact.ConsentRevoked" / "v1.avsc").unlink()
    with pytest.raises(RegistryError, match=r"ConsentRevoked/v1\.avsc is missing"):
        Registry.load(schema_root)


@pytest.mark.parametrize(
    ("event_type", "topic", "key_field"),
    [
        ("MessageSent", "sb.events.message", "contact_id"),
        ("ConsentGranted", "sb.events.contact", "aggregate_id"),
        ("TemplateRegistered", "sb.events.template", "aggregate_id"),
        ("ApiClientAdded", "sb.events.tenant", "aggregate_id"),
        ("OrderPlaced", "sb.events.business", "aggregate_id"),
    ],
)
def test_events_route_to_their_family_topic_and_key(event_type: str, topic: str, key_field: str) -> None:
    event = sample_event(default_registry().latest(event_type))
    where = event if key_field == "contact_id" else event["envelope"]
    assert route(event_type, event).topic == topic
    assert route(event_type, event).key == where[key_field]
