"""The feeder's Kafka plumbing: topic partitions, the tenant topic followed into a CallbackRegistry, rebalances."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from connectors._feeder_registry import CallbackRegistry
from switchboard.followers import EventFollower, topic_partitions

__all__ = ["RevokeListener", "TenantFollower", "topic_partitions"]


class TenantFollower(EventFollower):
    """Keeps a CallbackRegistry equal to the fold of the tenant topic: read to its end on start, then followed."""

    def __init__(self, bootstrap: str, topic: str, registry: CallbackRegistry, *, poll_seconds: float = 0.5,
                 catch_up_seconds: float = 120.0) -> None:
        super().__init__(bootstrap, topic, registry.apply, "the callback registry", poll_seconds=poll_seconds,
                         catch_up_seconds=catch_up_seconds)


Revoked = Callable[[set[TopicPartition]], Awaitable[None]]


class RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped; subscribe() checks isinstance
    """Hands revoked partitions to the feeder before the group moves them (aiokafka waits for it)."""

    def __init__(self, on_revoked: Revoked) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
