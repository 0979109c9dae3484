"""Answering a retried request with its first answer: a bounded, per-process LRU keyed by client and key."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from connectors._hub import header_value
from connectors._ingest_errors import Refused
from connectors._ingest_signing import IDEMPOTENCY_HEADER

__all__ = ["IdempotencyCache", "idempotency_key"]

_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII without spaces, like Stripe's keys


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's Idempotency-Key, None without one; refuses one that is empty, too long or not ASCII."""
    value = header_value(headers, IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise Refused("invalid_idempotency_key", f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters")
    return value


@dataclass(frozen=True)
class _Answer:
    body_sha256: str
    response: dict[str, Any]


class IdempotencyCache:
    """(client, key) -> (body sha256, 202 body) for the last `capacity` keys; lost on restart (see the docs)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[tuple[str, str], _Answer] = OrderedDict()

    def lookup(self, client_id: str, key: str, body_sha256: str) -> dict[str, Any] | None:
        """The first answer for this key, None if unseen; refuses the key reused with another body."""
        answer = self._answers.get((client_id, key))
        if answer is None:
            return None
        self._answers.move_to_end((client_id, key))
        if answer.body_sha256 != body_sha256:
            raise Refused("idempotency_key_reused", f"this {IDEMPOTENCY_HEADER} was used with a different body; "
                          "use a new key for a new request")
        return answer.response

    def store(self, client_id: str, key: str, body_sha256: str, response: dict[str, Any]) -> None:
        """Remembers an accepted request's answer, dropping the least recently used beyond capacity."""
        self._answers[(client_id, key)] = _Answer(body_sha256, response)
        self._answers.move_to_end((client_id, key))
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
