"""The rebalance fence: a worker expelled from its consumer group mid-batch writes no rows and calls no provider."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["NO_GENERATION", "STALL_SECONDS", "Fence", "may_write"]

_log = logging.getLogger(__name__)
# aiokafka's generation while the worker is not a member: before it joins, and once the coordinator has told it that
# it was expelled (a missed session timeout: UnknownMemberId or IllegalGeneration on a heartbeat or commit).
NO_GENERATION = -1
# A pause this long (half the 10 s session timeout) may have cost the worker its membership without its knowing yet.
STALL_SECONDS = 5.0


def may_write(begun: int, current: int, other_members: int | None) -> bool:
    """Whether a batch begun in group generation `begun` may still write its rows (and call providers).

    The generation changes in the middle of a batch only when the coordinator expelled the worker: an ordinary
    rebalance revokes partitions first, and faust waits for the batch before the worker rejoins. An expelled worker's
    partitions were handed to another member, which restored the rows from the changelogs; rows written now would
    land after that restore, and the next restore (the expelled worker rejoining is one) would take them over the
    new owner's newer rows, whose records are committed and never read again: the stale row then waits for an
    outcome it already consumed, or has lost the jobs queued since. Without a write the new owner redoes the records
    from the last committed offset (our commit is refused too: we are no longer a member), with the same outputs.
    An empty group is the exception: nobody took the partitions, and the broker accepts the expelled worker's
    commit, so its rows must be written like any others (`other_members` None: the group could not be described).
    """
    if begun == current and current != NO_GENERATION:
        return True
    return other_members == 0


class Fence:
    """Remembers the group generation a batch began in; `holds` says whether the batch may still write.

    The coordinator client learns of an expulsion only from its next heartbeat's answer, and a worker frozen past
    the session timeout (a stopped process, a starved machine) wakes with batches running that would write before
    that answer: so after a stall the fence asks the broker whether this member is still in the group.
    """

    def __init__(self, generation: Callable[[], int], member: Callable[[], str],
                 members: Callable[[], Awaitable[set[str]]], stall_seconds: float = STALL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._generation = generation  # the consumer's generation as its group coordinator client knows it now
        self._member = member  # this consumer's member id, as its coordinator client knows it
        self._members = members  # the ids of the group's members, asked of the broker (only when in doubt)
        self._stall, self._clock = stall_seconds, clock
        self._last = clock()
        self._doubt = False  # a stall was seen since the broker last confirmed the membership
        self._expelled: int | None = None  # a generation the broker no longer knows, though the client does

    async def begin(self, stage: str) -> int | None:
        """The generation a batch begins in; None if the worker is expelled already, and the batch is skipped whole.

        Its rows would start from what this worker last wrote, without the batches the fence kept from writing: its
        events would contradict the new owner's at the same versions. Its records are the new owner's to process.
        """
        begun = self._generation()
        if await self.holds(begun, stage):
            return begun
        return None

    async def holds(self, begun: int, stage: str) -> bool:
        """Whether a batch begun in `begun` may write its rows; logs why not."""
        current = self._generation()
        self._watch()
        member = current == begun != NO_GENERATION and current != self._expelled
        if member and not self._doubt:
            return True  # the usual case, without asking the broker anything
        ids = await self._ask(begun)
        if member:
            if ids is None or self._member() in ids:
                self._doubt = False  # still a member after the stall (or the broker cannot say: as before)
                return True
            self._expelled, member = current, False  # expelled while frozen; its client hears of it later
        if may_write(begun, current if member else NO_GENERATION, None if ids is None else len(ids)):
            return True
        _log.warning("%s batch of generation %s: expelled from the group (now %s), its rows are not written and its "
                     "sends not made; the partitions' new owner processes its records again", stage, begun, current)
        return False

    def _watch(self) -> None:
        """Notes a stall: batches (and the partition clock's ticks) keep the fence called many times a second."""
        now = self._clock()
        if now - self._last > self._stall:
            self._doubt = True
        self._last = now

    async def _ask(self, begun: int) -> set[str] | None:
        try:
            return await self._members()
        except Exception:  # the broker cannot say
            _log.exception("could not describe the consumer group (batch of generation %s)", begun)
            return None
