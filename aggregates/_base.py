"""What every Switchboard aggregate shares: millisecond event times, derived ids and domain errors."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, datetime_now_with_tzinfo

__all__ = ["AGGREGATE_ID_NAMESPACE", "DomainError", "InvalidTransition", "SwitchboardAggregate", "derived_id"]

# uuid5(NAMESPACE_URL, "urn:switchboard:aggregate-id"). Fixed forever: ids derived from it are stored everywhere.
AGGREGATE_ID_NAMESPACE = UUID("ec186b38-53fb-55c0-b2d8-7d16d9946083")


class DomainError(Exception):
    """A command was refused because of the arguments or the aggregate's state; the message says which."""


class InvalidTransition(DomainError):
    """A command does not apply in the aggregate's current state."""


@functools.lru_cache(maxsize=65_536)
def derived_id(kind: str, *parts: str) -> UUID:
    """A deterministic aggregate id: the same natural key always names the same aggregate (idempotent creation).

    Cached: a writer asks for the same ids again within a command (the request checks its id, then the aggregate
    derives it) and across commands (a contact's id per command)."""
    return uuid5(AGGREGATE_ID_NAMESPACE, ":".join((kind, *parts)))


def _now_ms() -> datetime:
    now = datetime_now_with_tzinfo()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class SwitchboardAggregate(Aggregate):
    """Base aggregate: events carry millisecond timestamps so they survive Avro's timestamp-millis unchanged."""

    AGGREGATE_TYPE = "Aggregate"

    if TYPE_CHECKING:
        # Declared for type checkers only: a runtime annotation would make eventsourcing turn this into a dataclass.
        tenant_id: str

    class Event(Aggregate.Event):
        """Base event of Switchboard aggregates."""

        @staticmethod
        def create_timestamp() -> datetime:
            """Now, in UTC, truncated to milliseconds."""
            return _now_ms()

    class Created(Event, Aggregate.Created):
        """Base creation event of Switchboard aggregates."""
