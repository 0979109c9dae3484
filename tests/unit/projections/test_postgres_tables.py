"""The PostgreSQL sink's table names, prefix patterns and typed message-status columns, checked without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections._postgres import Tables, _coerce, _like_prefix
from projections._postgres_typed import MESSAGE_STATUS


def test_a_version_has_its_own_tables() -> None:
    tables = Tables("message-status", 3)
    assert (tables.rows, tables.positions, tables.typed(MESSAGE_STATUS)) == (
        "message_status_v3_rows", "message_status_v3_positions", "message_status_v3")
    with pytest.raises(ValueError, match="cannot name"):
        _ = Tables("Robert'); DROP TABLE x;--", 1).rows


def test_like_wildcards_in_a_prefix_are_escaped() -> None:
    assert _like_prefix("msg:") == "msg:%"
    assert _like_prefix("a_b%c\\") == "a\\_b\\%c\\\\%"


def test_a_message_row_becomes_typed_columns() -> None:
    row = {"tenant": "acme", "contact_id": "c-1", "status": "read", "phase": "accepted", "category": "utility",
           "template": "order_shipped", "channels": ["whatsapp", "sms"], "sender": "sms-main", "attempts": 2,
           "provider_message_ids": ["wamid.1", "sms.9"], "reason": None, "version": 11,
           "times": {"requested": "2026-03-01T09:00:00+00:00", "read": "2026-03-01T09:05:00+00:00"},
           "errors": [{"code": "131026", "class": "permanent", "detail": "not on WhatsApp"}]}
    columns = dict(zip([name for name, _ in MESSAGE_STATUS.columns], MESSAGE_STATUS.values("msg:m-1", row),
                       strict=True))
    assert columns["message_id"] == "m-1"
    assert (columns["channel"], columns["channel_path"], columns["provider_message_id"]) == (
        "sms", "whatsapp>sms", "sms.9")
    assert columns["requested_at"] == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert columns["read_at"] == datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
    assert columns["delivered_at"] is None
    assert (columns["last_error_code"], columns["error_count"]) == ("131026", 1)


def test_a_row_of_another_shape_still_gives_a_row_of_nulls() -> None:
    values = MESSAGE_STATUS.values("msg:odd", 7)
    assert values[0] == "odd"
    assert set(values[1:]) == {None, 0}


def test_values_are_coerced_to_their_column_type() -> None:
    assert [_coerce("integer", value) for value in (3, True, "4", None)] == [3, None, None, None]
    assert [_coerce("text", value) for value in ("a", 1, None)] == ["a", "1", None]
