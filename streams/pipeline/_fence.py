"""The rebalance fence: a worker expelled from its consumer group mid-batch writes no rows and calls no provider."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

__all__ = ["NO_GENERATION", "Fence", "may_write"]

_log = logging.getLogger(__name__)
# aiokafka's generation while the worker is not a member: before it joins, and once the coordinator has told it that
# it was expelled (a missed session timeout: UnknownMemberId or IllegalGeneration on a heartbeat or commit).
NO_GENERATION = -1


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
    """Remembers the group generation a batch began in; `holds` says whether the batch may still write."""

    def __init__(self, generation: Callable[[], int], members: Callable[[], Awaitable[int]]) -> None:
        self._generation = generation  # the consumer's generation as its group coordinator client knows it now
        self._members = members  # the group's current member count, asked of the broker (only once fenced)

    async def begin(self, stage: str) -> int | None:
        """The generation a batch begins in; None if the worker is expelled already, and the batch is skipped whole.

        Its rows would start from what this worker last wrote, without the batches the fence kept from writing: its
        events would contradict the new owner's at the same versions. Its records are the new owner's to process.
        """
        begun = self._generation()
        if begun != NO_GENERATION or await self.holds(begun, stage):
            return begun
        return None

    async def holds(self, begun: int, stage: str) -> bool:
        """Whether a batch begun in `begun` may write its rows; logs why not."""
        current = self._generation()
        if current == begun != NO_GENERATION:
            return True  # the usual case, without asking the broker anything
        try:
            members: int | None = await self._members()
        except Exception:  # the broker cannot say: assume the partitions moved, as the coordinator said they did
            _log.exception("could not describe the consumer group after leaving generation %s", begun)
            members = None
        if may_write(begun, current, members):
            return True
        _log.warning("%s batch of generation %s: expelled from the group (now %s), its rows are not written and its "
                     "sends not made; the partitions' new owner processes its records again", stage, begun, current)
        return False
