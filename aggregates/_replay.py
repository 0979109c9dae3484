"""Folding events into aggregates safely: redeliveries are skipped, gaps and strangers are refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate, Snapshot

from aggregates._base import SwitchboardAggregate

__all__ = ["ForeignEvent", "ReplayError", "VersionGap", "fold", "take_snapshot"]

TAggregate = TypeVar("TAggregate", bound=SwitchboardAggregate)


class ReplayError(Exception):
    """Events could not be folded into an aggregate."""


class VersionGap(ReplayError):
    """An event is missing: the next event's version is not the one expected. Folding on would be wrong."""

    def __init__(self, aggregate_id: UUID, expected: int, found: int) -> None:
        super().__init__(
            f"aggregate {aggregate_id}: expected version {expected}, got {found}; "
            f"events {expected}..{found - 1} are missing (lost, or not yet consumed)"
        )
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.found = found


class ForeignEvent(ReplayError):
    """An event of another aggregate, or of another aggregate type, was offered."""


def fold(
    cls: type[TAggregate],
    events: Iterable[CanMutateAggregate[UUID]],
    start: TAggregate | Snapshot | None = None,
) -> TAggregate:
    """The aggregate after applying events in order to `start` (a snapshot, an aggregate, or nothing).

    Events at or below the current version are skipped: they were applied already (a redelivery). A live
    `start` aggregate is advanced in place; a snapshot is restored into a new object first.
    """
    aggregate = _restore(cls, start)
    for event in events:
        aggregate = _fold_one(cls, aggregate, event)
    if aggregate is None:
        raise ReplayError(f"no events to build a {cls.__name__} from")
    return aggregate


def take_snapshot(aggregate: SwitchboardAggregate) -> Snapshot:
    """A snapshot of the aggregate's state at its current version."""
    return Snapshot.take(aggregate)


def _restore(cls: type[TAggregate], start: TAggregate | Snapshot | None) -> TAggregate | None:
    if not isinstance(start, Snapshot):
        return start
    return _as(cls, start.mutate(None))


def _fold_one(cls: type[TAggregate], aggregate: TAggregate | None, event: CanMutateAggregate[UUID]) -> TAggregate:
    if aggregate is None:
        if event.originator_version != 1:
            raise VersionGap(event.originator_id, 1, event.originator_version)
        return _as(cls, event.mutate(None))
    if event.originator_id != aggregate.id:
        raise ForeignEvent(f"event {type(event).__qualname__} belongs to {event.originator_id}, not {aggregate.id}")
    if event.originator_version <= aggregate.version:
        return aggregate
    if event.originator_version != aggregate.version + 1:
        raise VersionGap(aggregate.id, aggregate.version + 1, event.originator_version)
    event.mutate(aggregate)
    return aggregate


def _as(cls: type[TAggregate], aggregate: object) -> TAggregate:
    if not isinstance(aggregate, cls):
        raise ForeignEvent(f"expected a {cls.__name__}, the events built a {type(aggregate).__name__}")
    return aggregate
