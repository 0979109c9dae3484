"""The normaliser's Kafka plumbing: topic checks, and rebalances held while a batch is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from switchboard.errors import SwitchboardError
from switchboard.followers import topic_partitions

__all__ = ["RevokeGate", "require_topics"]


async def require_topics(bootstrap: str, creators: dict[str, str]) -> None:
    """Raises SwitchboardError naming the first missing topic and the command that creates it."""
    for topic, creator in creators.items():
        try:
            await topic_partitions(bootstrap, topic)
        except SwitchboardError:
            raise SwitchboardError(f"topic {topic} does not exist at {bootstrap}: `{creator}` creates it") from None


class RevokeGate(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped; subscribe() checks isinstance
    """Holds a rebalance until the batch under way is written and committed, so its records are not redone."""

    def __init__(self, wait_for_batch: Callable[[], Awaitable[None]]) -> None:
        self._wait_for_batch = wait_for_batch

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._wait_for_batch()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
