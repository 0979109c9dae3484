"""Creating topics explicitly, with their partition counts and configs, and checking existing ones match."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import EVENT_TOPICS
from switchboard.errors import SwitchboardError

# The event topics are the audit log: kept forever, never compacted.
AUDIT_LOG_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as Switchboard needs it: name, partition count, replication (-1: min(3, brokers)), configs."""

    name: str
    partitions: int
    replication: int = -1
    config: dict[str, str] = field(default_factory=dict)


def event_topic_specs(partitions: int, replication: int = -1, prefix: str = "") -> list[TopicSpec]:
    """The sb.events.* audit-log topics of the event model, all with the same partition count (co-partitioned)."""
    return [TopicSpec(f"{prefix}{topic.name}", partitions, replication, AUDIT_LOG_CONFIG)
            for topic in EVENT_TOPICS.values()]


class TopicMismatch(SwitchboardError):
    """An existing topic differs from its spec in a way that would break keying or co-partitioning."""


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> int:
    """Creates missing topics and returns the cluster's default replication; raises TopicMismatch where an
    existing topic has another partition count."""
    wanted = {spec.name: spec for spec in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        replication = await default_replication(admin)
        for spec in wanted.values():
            await _create_one(admin, spec, replication)
        await _check_partitions(admin, wanted)
    finally:
        await admin.close()
    return replication


async def default_replication(admin: AIOKafkaAdminClient) -> int:
    """Three copies where the cluster has three brokers, else as many as it has."""
    cluster = await admin.describe_cluster()
    return min(3, len(cluster["brokers"]))


async def _create_one(admin: AIOKafkaAdminClient, spec: TopicSpec, default: int) -> None:
    replication = spec.replication if spec.replication > 0 else default
    topic = NewTopic(spec.name, spec.partitions, replication, topic_configs=dict(spec.config))
    with contextlib.suppress(TopicAlreadyExistsError):
        await admin.create_topics([topic])


async def _check_partitions(admin: AIOKafkaAdminClient, wanted: dict[str, TopicSpec]) -> None:
    for name, found in (await _partition_counts(admin, list(wanted))).items():
        spec = wanted[name]
        if found != spec.partitions:
            raise TopicMismatch(
                f"topic {spec.name} has {found} partitions but Switchboard needs {spec.partitions}: keys would "
                "land on other partitions than their state. Recreate it or migrate it with a new name."
            )


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str], attempts: int = 300) -> dict[str, int]:
    """Partition count per topic, waiting out the moment after creation when metadata still lists none (seconds on
    a loaded machine: 5 s was seen to be too short)."""
    counts: dict[str, int] = {}
    for _ in range(attempts):
        counts = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
        if all(counts.get(name, 0) > 0 for name in names):
            return counts
        await asyncio.sleep(0.1)  # metadata propagation has no event to wait on; bounded by `attempts`
    return counts
