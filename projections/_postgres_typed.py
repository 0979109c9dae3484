"""The BI-friendly message_status_v<N> table: one typed row per message, kept beside the JSON rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["MESSAGE_STATUS", "TYPED_TABLES", "TypedTable"]


@dataclass(frozen=True)
class TypedTable:
    """Typed columns derived from every JSON row whose key starts with `prefix`, in the same transaction."""

    name: str
    prefix: str
    columns: tuple[tuple[str, str], ...]  # (column, SQL type); the first is the primary key
    values: Callable[[str, Any], tuple[Any, ...]]
    indexes: tuple[tuple[str, ...], ...] = ()


# Column -> the status whose first time it holds (the row's `times`).
_TIMES = {"requested_at": "requested", "rendered_at": "rendered", "routed_at": "routed",
          "first_dispatch_at": "dispatching", "accepted_at": "accepted", "sent_at": "sent",
          "delivered_at": "delivered", "read_at": "read", "failed_at": "failed", "deferred_at": "deferred",
          "suppressed_at": "suppressed", "expired_at": "expired", "dead_lettered_at": "dead_lettered"}

_COLUMNS = (
    ("message_id", "text"), ("tenant", "text"), ("contact_id", "text"), ("status", "text"), ("phase", "text"),
    ("category", "text"), ("template", "text"), ("channel", "text"), ("channel_path", "text"), ("sender", "text"),
    ("attempts", "integer"), ("provider_message_id", "text"),
    *((column, "timestamptz") for column in _TIMES),
    ("last_error_code", "text"), ("last_error_class", "text"), ("last_error_detail", "text"),
    ("error_count", "integer"), ("reason", "text"), ("version", "integer"),
)


def _message_status_values(key: str, row: Any) -> tuple[Any, ...]:
    row = row if isinstance(row, dict) else {}
    times = row.get("times") or {}
    errors = row.get("errors") or []
    last_error = errors[-1] if errors and isinstance(errors[-1], dict) else {}
    channels = [str(channel) for channel in row.get("channels") or []]
    provider_ids = row.get("provider_message_ids") or []
    return (
        key.removeprefix("msg:"), row.get("tenant"), row.get("contact_id"), row.get("status"), row.get("phase"),
        row.get("category"), row.get("template"), channels[-1] if channels else None,
        ">".join(channels) or None, row.get("sender"), row.get("attempts"),
        provider_ids[-1] if provider_ids else None,
        *(_time(times.get(status)) for status in _TIMES.values()),
        last_error.get("code"), last_error.get("class"), last_error.get("detail"), len(errors), row.get("reason"),
        row.get("version"),
    )


def _time(value: Any) -> datetime | None:
    """The row keeps ISO strings; BI tools want timestamptz (an unreadable one stays NULL, the JSON has it)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


MESSAGE_STATUS = TypedTable(
    name="message_status", prefix="msg:", columns=_COLUMNS, values=_message_status_values,
    indexes=(("tenant", "requested_at"), ("contact_id",), ("status",)),
)

TYPED_TABLES = {"message-status": MESSAGE_STATUS}
