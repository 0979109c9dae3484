"""Full transitive compatibility: the shipped schemas pass; incompatible changes fail naming schema and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas import Registry
from schemas.compat import CompatibilityError, assert_compatible, check, main
from schemas.golden import write_missing
from schemas.publish import publish

FAILED = "switchboard.message.MessageFailed"

Schema = dict[str, Any]


def _field(schema: Schema, name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _add_version(root: Path, subject: str, change: Callable[[Schema], None]) -> Path:
    """Writes v<N+1>.avsc next to the newest version of a subject, changed by `change`."""
    folder = root / "avro" / subject
    newest = max(int(p.stem[1:]) for p in folder.glob("v*.avsc"))
    schema = json.loads((folder / f"v{newest}.avsc").read_text())
    change(schema)
    path = folder / f"v{newest + 1}.avsc"
    path.write_text(json.dumps(schema, indent=2))
    return path


def _messages(root: Path) -> list[str]:
    return [str(problem) for problem in check(root)]


def test_the_published_schemas_are_fully_transitively_compatible() -> None:
    assert check() == []
    assert main([]) == 0


def test_a_field_added_without_default_fails_naming_schema_and_field(schema_root: Path) -> None:
    _add_version(schema_root, FAILED, lambda s: s["fields"].append({"name": "channel_code", "type": "string"}))
    with pytest.raises(CompatibilityError) as failure:
        assert_compatible(schema_root)
    message = str(failure.value)
    assert FAILED in message
    assert "field 'channel_code' was added in v3 without a default" in message
    assert "v1 data read with v3" in message
    assert "v2 data read with v3" in message


def test_a_type_change_fails_naming_schema_and_field(schema_root: Path) -> None:
    _add_version(schema_root, FAILED, lambda s: _field(s, "attempt").update(type=["null", "string"]))
    messages = _messages(schema_root)
    assert any(FAILED in m and "field 'attempt'" in m and "int" in m and "string" in m for m in messages)
    assert main([str(schema_root)]) == 1


def test_a_promotion_is_only_one_way_so_it_is_not_fully_compatible(schema_root: Path) -> None:
    _add_version(schema_root, FAILED, lambda s: _field(s, "attempt").update(type=["null", "long"]))
    messages = _messages(schema_root)
    assert messages, "int -> long can be read forward but not backward"
    assert all("v3 data read with v" in m and "field 'attempt'" in m for m in messages)


def test_removing_a_field_without_default_fails(schema_root: Path) -> None:
    subject = "switchboard.message.MessageSent"
    _add_version(schema_root, subject, lambda s: s["fields"].remove(_field(s, "provider_at")))
    assert _messages(schema_root) == [
        f"schema {subject} (v2 data read with v1): field 'provider_at' was removed in v2 but has no default "
        "in v1, so v1 cannot read v2 data"
    ]


def test_an_enum_symbol_without_a_default_symbol_fails(schema_root: Path) -> None:
    def add_symbol(schema: Schema) -> None:
        _field(schema, "category")["type"]["symbols"].append("marketing_lite")

    _add_version(schema_root, "switchboard.message.MessageRequested", add_symbol)
    [message] = _messages(schema_root)
    assert "MessageRequested (v2 data read with v1): field 'category'" in message
    assert "marketing_lite" in message


def test_an_enum_symbol_with_a_default_symbol_is_compatible(schema_root: Path) -> None:
    _add_version(schema_root, FAILED, lambda s: _field(s, "failure_class")["type"]["symbols"].append("quota"))
    assert _messages(schema_root) == []


def test_nested_record_fields_are_named_with_their_path(schema_root: Path) -> None:
    def add_required(schema: Schema) -> None:
        quiet = _field(schema, "quiet_hours")["type"][1]
        quiet["fields"].append({"name": "weekdays_only", "type": "boolean"})

    _add_version(schema_root, "switchboard.contact.PreferencesChanged", add_required)
    assert any("field 'quiet_hours.weekdays_only' was added in v2" in m for m in _messages(schema_root))


def test_making_an_optional_field_required_fails(schema_root: Path) -> None:
    _add_version(schema_root, FAILED, lambda s: _field(s, "detail").update(type="string", default=""))
    assert any("field 'detail' may be null in v1 data but v3 does not allow null" in m for m in _messages(schema_root))


def test_editing_a_published_schema_fails(schema_root: Path) -> None:
    path = schema_root / "avro" / FAILED / "v1.avsc"
    schema = json.loads(path.read_text())
    _field(schema, "detail")["doc"] = "reworded"
    path.write_text(json.dumps(schema))
    assert _messages(schema_root) == [
        f"schema {FAILED} (v1): was edited after publishing; published versions are immutable, add a new version"
    ]


def test_versions_must_not_skip_numbers(schema_root: Path) -> None:
    (schema_root / "avro" / FAILED / "v2.avsc").rename(schema_root / "avro" / FAILED / "v4.avsc")
    assert any("versions [1, 4] are not 1..n" in m for m in _messages(schema_root))


def test_a_compatible_version_is_published_with_the_next_id_and_golden_files(schema_root: Path) -> None:
    def add_optional(schema: Schema) -> None:
        schema["fields"].append({"name": "provider_title", "type": ["null", "string"], "default": None})

    next_id = max(version.schema_id for version in Registry.load(schema_root)) + 1
    _add_version(schema_root, FAILED, add_optional)
    [entry] = publish(schema_root)
    assert (entry.subject, entry.version, entry.schema_id) == (FAILED, 3, next_id)
    registry = Registry.load(schema_root)
    assert registry.latest("MessageFailed").schema_id == next_id
    written = write_missing(registry, schema_root)
    assert sorted(p.name for p in written) == ["v3.bin", "v3.json"]
    assert publish(schema_root) == []


def test_publish_refuses_incompatible_versions_and_changes_nothing(schema_root: Path) -> None:
    before = (schema_root / "registry.json").read_text()
    _add_version(schema_root, FAILED, lambda s: s["fields"].append({"name": "channel_code", "type": "string"}))
    with pytest.raises(CompatibilityError, match="channel_code"):
        publish(schema_root)
    assert (schema_root / "registry.json").read_text() == before
