"""Due timers per owned partition, in memory: rebuilt from the partition's contact rows, never written."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

__all__ = ["TimerIndex"]

# Rebuild a partition's heap when stale entries outnumber live ones by this factor (plus a floor), so memory
# follows the contacts with timers, not the number of timer changes.
_COMPACT_FACTOR = 2
_COMPACT_FLOOR = 1024


class _Partition:
    """One partition's contacts with a timer: the due time per contact and a heap of (due, contact) with stale
    entries left in place (a changed timer pushes a new entry; the old one is skipped when it surfaces)."""

    def __init__(self, timers: Iterable[tuple[str, float]]) -> None:
        self.due = dict(timers)
        self.heap = [(due, contact) for contact, due in self.due.items()]
        heapq.heapify(self.heap)

    def set(self, contact: str, due: float | None) -> None:
        if due is None:
            self.due.pop(contact, None)
            return
        if self.due.get(contact) == due:
            return
        self.due[contact] = due
        heapq.heappush(self.heap, (due, contact))
        if len(self.heap) > _COMPACT_FACTOR * len(self.due) + _COMPACT_FLOOR:
            self.heap = [(d, c) for c, d in self.due.items()]
            heapq.heapify(self.heap)

    def pop_due(self, now: float) -> list[str]:
        fired: list[str] = []
        while self.heap and self.heap[0][0] <= now:
            due, contact = heapq.heappop(self.heap)
            if self.due.get(contact) == due:
                del self.due[contact]  # the writer sets the contact's next timer again when it applies the tick
                fired.append(contact)
        return fired


class TimerIndex:
    """Contact id -> due time of its earliest timer, per owned partition of the command topic.

    The contact rows are the truth (each knows `next_timer()`); this is their index, kept in memory and rebuilt
    from a partition's rows (`load(partition)`) the first time a tick of it arrives after the partition was
    assigned. Nothing of it is written, so a batch pays O(changed contacts), a tick O(due contacts · log n), and a
    SIGKILL or a rebalance loses nothing: the next owner rebuilds it from the rows the changelog restored.
    """

    def __init__(self, load: Callable[[int], Iterable[tuple[str, float]]]) -> None:
        self._load = load
        self._partitions: dict[int, _Partition] = {}
        # Changes made before a partition's first tick, in rows the batch has not stored yet: they win over the
        # rows the rebuild reads.
        self._early: dict[int, dict[str, float | None]] = {}

    def set(self, partition: int, contact: str, due: float | None) -> None:
        """Records a contact's next timer (None: nothing waits on the clock) after its row changed."""
        index = self._partitions.get(partition)
        if index is not None:
            index.set(contact, due)
        else:
            self._early.setdefault(partition, {})[contact] = due

    def due(self, partition: int, now: float) -> list[str]:
        """The contacts whose timer is due at `now`, earliest first, taken out of the index (applying the tick
        to each sets its next timer again)."""
        index = self._partitions.get(partition)
        if index is None:
            index = self._partitions[partition] = _Partition(self._load(partition))
            for contact, early in self._early.pop(partition, {}).items():
                index.set(contact, early)
        return index.pop_due(now)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drops partitions that were revoked or assigned anew: their rows may change under another owner."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._early.pop(partition, None)

    def size(self, partition: int) -> int | None:
        """Contacts with a timer in the partition, None while it is not built."""
        index = self._partitions.get(partition)
        return None if index is None else len(index.due)
