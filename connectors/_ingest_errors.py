"""Refusals of the ingestion endpoint: an HTTP status, a machine-readable code, a message and field details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["CODES", "Refused", "error_body"]

# Every code the endpoint answers with, and its status; the docs table and the tests are checked against it.
CODES: Final[Mapping[str, int]] = {
    "malformed_json": 400,
    "invalid_idempotency_key": 400,
    "missing_signature": 401,
    "unknown_client": 401,
    "timestamp_expired": 401,
    "bad_signature": 403,
    "tenant_mismatch": 403,
    "idempotency_key_reused": 409,
    "body_too_large": 413,
    "too_many_events": 413,
    "event_type_not_allowed": 422,
    "schema_violation": 422,
    "internal_error": 500,
    "kafka_unavailable": 503,
}


class Refused(Exception):
    """A request the endpoint does not accept; nothing of it was produced."""

    def __init__(self, code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = CODES[code]
        self.message = message
        self.details = list(details)

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "details"}}."""
    return {"error": {"code": code, "message": message, "details": list(details)}}
