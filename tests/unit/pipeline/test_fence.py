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
    """A consumer's generation and member id, the broker's member ids, and a clock, as the fence reads them."""

    def __init__(self, generation: int, others: int | Exception, member: str = "me") -> None:
        self.generation, self.member, self.asked, self.now = generation, member, 0, 0.0
        self.others = others
        self.ids = set() if isinstance(others, Exception) else {f"other-{n}" for n in range(others)}
        self.ids |= {member} if member else set()

    async def members(self) -> set[str]:
        self.asked += 1
        if isinstance(self.others, Exception):
            raise self.others
        return self.ids

    def fence(self) -> Fence:
        return Fence(lambda: self.generation, lambda: self.member, self.members, stall_seconds=5.0,
                     clock=lambda: self.now)

    def expel(self) -> None:
        """The coordinator dropped this member; its client has not heard yet."""
        self.ids.discard(self.member)


async def test_the_fence_asks_the_broker_nothing_while_the_generation_holds() -> None:
    group = _Group(3, RuntimeError("not to be asked"))
    fence = group.fence()
    begun = await fence.begin("writer")
    assert begun == 3
    group.now = 4.0  # a slow batch, but no stall
    assert await fence.holds(begun, "writer")
    assert group.asked == 0


@pytest.mark.parametrize(("others", "holds"), [(1, False), (0, True), (OSError("broker away"), False)])
async def test_the_fence_decides_by_the_group_once_the_worker_was_expelled(others: int | Exception,
                                                                           holds: bool) -> None:
    group = _Group(3, others)
    fence = group.fence()
    begun = await fence.begin("dispatch")
    assert begun is not None
    group.generation, group.member = NO_GENERATION, ""  # a heartbeat was answered UnknownMemberId
    group.ids.discard("me")
    assert await fence.holds(begun, "dispatch") is holds
    assert group.asked == 1


@pytest.mark.parametrize(("others", "begins"), [(1, False), (0, True)])
async def test_a_batch_that_begins_after_the_expulsion_is_skipped_whole_unless_the_group_is_empty(
        others: int, begins: bool) -> None:
    # Its rows would lack the effects of the batches the fence kept from writing: its events would contradict the
    # new owner's at the same versions.
    group = _Group(NO_GENERATION, others, member="")
    assert (await group.fence().begin("writer") is not None) is begins


async def test_after_a_stall_the_broker_is_asked_and_a_member_it_dropped_writes_nothing_until_it_rejoins() -> None:
    group = _Group(3, 1)
    fence = group.fence()
    begun = await fence.begin("writer")
    assert begun == 3
    group.now = 12.0  # frozen past the session timeout: the client still believes in generation 3
    group.expel()
    assert not await fence.holds(begun, "writer")
    assert await fence.begin("writer") is None  # later batches too, before the client hears of it
    group.generation, group.now = 5, 12.5  # rejoined
    group.ids.add("me")
    assert await fence.begin("writer") == 5


async def test_after_a_stall_a_member_the_broker_still_knows_writes_and_the_doubt_is_gone() -> None:
    group = _Group(3, 1)
    fence = group.fence()
    begun = await fence.begin("writer")
    group.now = 12.0
    assert begun is not None
    assert await fence.holds(begun, "writer")
    assert await fence.holds(begun, "writer")
    assert group.asked == 1


def test_the_private_fields_the_fence_reads_are_still_where_it_reads_them() -> None:
    # `app._group_generation` and `app._member_id` read aiokafka's and faust's private fields (there is no public
    # accessor) and answer "never fence" when the path is missing: an upgrade that moved them would switch the fence
    # off silently. The lock pins both libraries; this makes a deliberate upgrade fail here first.
    import inspect

    from aiokafka import AIOKafkaConsumer
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from faust.transport.drivers import aiokafka as faust_aiokafka

    coordinator = inspect.getsource(GroupCoordinator.__init__)
    assert "self.generation = " in coordinator
    assert "self.member_id = " in coordinator
    assert "self._coordinator = GroupCoordinator(" in inspect.getsource(AIOKafkaConsumer.start)
    assert "self._consumer = " in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread)
    assert "self._thread" in inspect.getsource(faust_aiokafka.Consumer)
