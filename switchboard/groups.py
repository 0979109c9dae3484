"""Consumer-group inspection: how many members a group has and whether its rebalance has settled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError


@dataclass(frozen=True)
class GroupState:
    """A consumer group as its coordinator describes it."""

    state: str
    members: int
    member_ids: tuple[str, ...] = field(default=(), compare=False)  # the members' ids (the pipeline's fence)


async def describe_group(bootstrap: str, group: str) -> GroupState:
    """The group's state (Stable, PreparingRebalance, Empty, Dead...), member count and member ids."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    description = response.to_object()["groups"][0]
    return GroupState(state=description["state"], members=len(description["members"]),
                      member_ids=tuple(str(member["member_id"]) for member in description["members"]))


async def wait_for_stable_group(bootstrap: str, group: str, members: int, timeout: float = 60.0) -> GroupState:
    """Polls until the group is Stable with exactly `members` members; TimeoutError with the last state otherwise."""
    deadline = time.monotonic() + timeout
    current = GroupState("unknown", 0)
    while time.monotonic() < deadline:
        try:
            current = await describe_group(bootstrap, group)
        except GroupCoordinatorNotAvailableError:
            current = GroupState("no coordinator yet", 0)  # a fresh cluster is still creating __consumer_offsets
        if current == GroupState("Stable", members):
            return current
        await asyncio.sleep(0.2)  # the coordinator has no push notification for group changes
    raise TimeoutError(f"group {group} not Stable with {members} members after {timeout:.0f}s: {current}")
