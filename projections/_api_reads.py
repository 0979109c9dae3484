"""What the read API answers, computed from the projection stores for one tenant: rows, funnels, percentiles."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from projections._delivery_stats import LATENCY_BUCKETS_MS, rates
from projections._message_status import message_key, recipient_key
from projections._store import ProjectionStore

__all__ = ["MAX_DAYS", "MAX_LIMIT", "ApiError", "DayRange", "funnel", "latency", "message", "percentile",
           "recipient_messages", "usage"]

MAX_LIMIT: Final = 500  # messages per recipient in one answer
MAX_DAYS: Final = 366  # days in one statistics range
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_QUANTILES: Final = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


class ApiError(Exception):
    """An answer other than 200 that is not about authentication: 400 for a bad query, 404 for nothing here."""

    def __init__(self, status: int, code: str, message: str, details: Sequence[Mapping[str, Any]] = (),
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = list(details), dict(headers or {})


def message(store: ProjectionStore, tenant: str, message_id: str) -> dict[str, Any]:
    """The message's row; another tenant's message is as unknown as one that does not exist (no id leaks)."""
    row = store.get(message_key(message_id))
    if not isinstance(row, dict) or row.get("tenant") != tenant:
        raise ApiError(404, "not_found", f"no message {message_id}")
    return row


def recipient_messages(store: ProjectionStore, tenant: str, contact_id: str, limit: int) -> list[dict[str, Any]]:
    """The contact's message rows, newest request first; 404 when this tenant has none for that contact."""
    ids = store.get(recipient_key(contact_id)) or []
    rows = [row for row in (store.get(message_key(i)) for i in reversed(ids))
            if isinstance(row, dict) and row.get("tenant") == tenant]
    if not rows:
        raise ApiError(404, "not_found", f"no messages for contact {contact_id}")
    return rows[:limit]


class DayRange:
    """`from` and `to` (inclusive, YYYY-MM-DD, UTC days); by default the last seven days up to today."""

    def __init__(self, query: Mapping[str, str], today: date) -> None:
        self.last = parse_day(query.get("to"), "to") or today
        self.first = parse_day(query.get("from"), "from") or self.last - timedelta(days=6)
        if self.first > self.last:
            raise ApiError(400, "invalid_query", "`from` is after `to`")
        if (self.last - self.first).days >= MAX_DAYS:
            raise ApiError(400, "invalid_query", f"at most {MAX_DAYS} days per request")

    def __contains__(self, day: str) -> bool:
        return self.first.isoformat() <= day <= self.last.isoformat()

    def rows(self, store: ProjectionStore, kind: str, tenant: str) -> Iterator[tuple[str, str, Any]]:
        """(day, rest of the key, row) of `<kind>:<tenant>:<day>[:rest]` rows in the range, in key order."""
        prefix = f"{kind}:{tenant}:"
        for key, row in store.items(prefix):
            day, _, rest = key[len(prefix):].partition(":")
            # Strict: names never hold ":", so a tenant whose id extends ours ("acme:x") never matches here.
            if _DAY.fullmatch(day) and ":" not in rest and day in self:
                yield day, rest, row


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    if not _DAY.fullmatch(value):
        raise ApiError(400, "invalid_query", f"`{name}` must be a day, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_query", f"`{name}` is not a calendar day: {value}") from None


def funnel(store: ProjectionStore, tenant: str, days: DayRange, template: str | None) -> dict[str, Any]:
    """Funnel rows per day and template with their rates, and the range's total."""
    rows: list[dict[str, Any]] = []
    total: dict[str, int] = {}
    for day, name, row in days.rows(store, "funnel", tenant):
        if template and name != template:
            continue
        by_channel = {channel: {"counts": counts, "rates": rates(counts)} for channel, counts in
                      row["by_channel"].items()}
        rows.append({"day": day, "template": name, "counts": row["total"], "rates": rates(row["total"]),
                     "by_channel": by_channel})
        total = _added(total, row["total"])
    return {"from": days.first.isoformat(), "to": days.last.isoformat(), "template": template or None,
            "rows": rows, "total": {"counts": total, "rates": rates(total)}}


def usage(store: ProjectionStore, tenant: str, days: DayRange) -> dict[str, Any]:
    """Billable conversations per day and pricing category, and the range's total."""
    rows: list[dict[str, Any]] = []
    total: dict[str, int] = {}
    for day, rest, row in days.rows(store, "usage", tenant):
        if rest == "":
            rows.append({"day": day, "categories": row})
            total = _added(total, row)
    return {"from": days.first.isoformat(), "to": days.last.isoformat(), "rows": rows, "total": total}


def latency(store: ProjectionStore, tenant: str, day: date) -> dict[str, Any]:
    """Each span's histogram (counts per bucket of LATENCY_BUCKETS_MS, the last open-ended) with p50/p90/p99."""
    row = store.get(f"latency:{tenant}:{day.isoformat()}") or {}
    spans = {span: {"counts": counts, "count": sum(counts),
                    **{name: percentile(counts, q) for name, q in _QUANTILES}}
             for span, counts in sorted(row.items())}
    return {"day": day.isoformat(), "buckets_ms": list(LATENCY_BUCKETS_MS), "spans": spans}


def percentile(counts: Sequence[int], q: float, bounds: Sequence[int] = LATENCY_BUCKETS_MS) -> float | None:
    """The q-quantile estimated from bucket counts: linear within the bucket it falls in (as Prometheus does).

    Bucket i holds values in (bounds[i-1], bounds[i]] (0 below the first); in the last, open-ended bucket
    the estimate is its lower bound, the most that can be said. None for an empty histogram.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if index else 0
            if index >= len(bounds):
                return float(lower)
            return round(lower + (bounds[index] - lower) * (rank - seen) / count, 1)
        seen += count
    return float(bounds[-1])


def today() -> date:
    return datetime.now(UTC).date()


def _added(total: Mapping[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    merged = dict(total)
    for name, count in counts.items():
        merged[name] = merged.get(name, 0) + count
    return merged
