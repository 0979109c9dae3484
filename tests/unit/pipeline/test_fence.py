"""The rebalance fence: a batch writes its rows only while its worker is still the member it began as."""

from __future__ import annotations

import pytest

from streams.pipeline._fence import NO_GENERATION, Fence, may_write


def test_a_batch_that_stays_in_its_generation_writes() -> None:
    assert may_write(7, 7, None)


def test_a_batch_whose_worker_was_expelled_does_not_write_while_others_hold_the_group() -> None:
    assert not may_write(7, NO_GENERATION, 1)
    assert not may_write(7, 8, 2)  # expelled and already back in a new generation: the partitions moved meanwhile
    assert not may_write(NO_GENERATION, NO_GENERATION, 1)  # begun after the expulsion: never a member for it


def test_an_expelled_worker_of_an_empty_group_writes_because_its_commit_is_accepted() -> None:
    assert may_write(7, NO_GENERATION, 0)


def test_an_undescribable_group_counts_as_taken() -> None:
    assert not may_write(7, NO_GENERATION, None)


class _Group:
    """A consumer's generation and the broker's member count, as the fence reads them."""

    def __init__(self, generation: int, members: int | Exception) -> None:
        self.generation, self.members, self.asked = generation, members, 0

    async def count(self) -> int:
        self.asked += 1
        if isinstance(self.members, Exception):
            raise self.members
        return self.members


async def test_the_fence_asks_the_broker_nothing_while_the_generation_holds() -> None:
    group = _Group(3, RuntimeError("not to be asked"))
    fence = Fence(lambda: group.generation, group.count)
    begun = await fence.begin("writer")
    assert begun == 3
    assert await fence.holds(begun, "writer")
    assert group.asked == 0


@pytest.mark.parametrize(("members", "holds"), [(1, False), (0, True), (OSError("broker away"), False)])
async def test_the_fence_decides_by_the_group_once_the_worker_was_expelled(members: int | Exception,
                                                                           holds: bool) -> None:
    group = _Group(3, members)
    fence = Fence(lambda: group.generation, group.count)
    begun = await fence.begin("dispatch")
    assert begun is not None
    group.generation = NO_GENERATION  # the coordinator answered a heartbeat with UnknownMemberId
    assert await fence.holds(begun, "dispatch") is holds
    assert group.asked == 1


@pytest.mark.parametrize(("members", "begins"), [(1, False), (0, True)])
async def test_a_batch_that_begins_after_the_expulsion_is_skipped_whole_unless_the_group_is_empty(
        members: int, begins: bool) -> None:
    # Its rows would lack the effects of the batches the fence kept from writing: its events would contradict the
    # new owner's at the same versions.
    group = _Group(NO_GENERATION, members)
    fence = Fence(lambda: group.generation, group.count)
    assert (await fence.begin("writer") is not None) is begins
