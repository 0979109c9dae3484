"""Which offset a consumer may commit per partition: just past the longest run of finished records from the start."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

P = TypeVar("P", bound=Hashable)


@dataclass
class _Partition:
    """Records started in offset order, those finished (in any order), and the commit position."""

    started: deque[int] = field(default_factory=deque)
    unfinished: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    position: int | None = None  # one past the last record of the finished prefix: what may be committed
    committed: int | None = None


class OffsetTracker(Generic[P]):
    """Tracks records in flight per partition; commits never pass a record that is not finished yet.

    Work finishes in any order (messages are delivered concurrently), but a committed offset tells a restarted
    consumer that everything before it is done, so only the contiguous finished prefix of each partition counts.
    Offsets may have gaps (transaction markers, compaction): only the records actually started are waited for.
    """

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def start(self, partition: P, offset: int) -> None:
        """A record was taken from the partition; offsets must increase within a partition."""
        state = self._partitions.setdefault(partition, _Partition())
        last = state.started[-1] if state.started else (state.position or 0) - 1
        if offset <= last:
            raise ValueError(f"offset {offset} of {partition!r} is not after {last}: forget() the partition first")
        state.started.append(offset)
        state.unfinished.add(offset)

    def finish(self, partition: P, offset: int) -> None:
        """The record is delivered or dead-lettered; unknown partitions (forgotten after a revoke) are ignored."""
        state = self._partitions.get(partition)
        if state is None or offset not in state.unfinished:
            return  # never started here, finished already, or its partition was forgotten
        state.unfinished.remove(offset)
        state.finished.add(offset)
        self._advance(state)

    def pending(self, partition: P) -> int:
        """How many records of the partition are started and not finished."""
        state = self._partitions.get(partition)
        return 0 if state is None else len(state.unfinished)

    def advanced(self) -> dict[P, int]:
        """The offsets to commit now: partitions whose finished prefix moved since the last mark_committed."""
        return {partition: state.position for partition, state in self._partitions.items()
                if state.position is not None and state.position != state.committed}

    def mark_committed(self, offsets: dict[P, int]) -> None:
        """Records that these offsets were committed (so advanced() stops returning them)."""
        for partition, offset in offsets.items():
            if partition in self._partitions:
                self._partitions[partition].committed = offset

    def forget(self, partition: P) -> None:
        """Drops a partition (revoked: its records are another consumer's now, finishing them changes nothing)."""
        self._partitions.pop(partition, None)

    @staticmethod
    def _advance(state: _Partition) -> None:
        while state.started and state.started[0] in state.finished:
            offset = state.started.popleft()
            state.finished.remove(offset)
            state.position = offset + 1
