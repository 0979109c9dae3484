"""The event topics are created as the audit log: co-partitioned, kept forever, never compacted."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from switchboard.topics import TopicMismatch, ensure_topics, event_topic_specs


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    return {**configs, "partitions": str(len(description["partitions"]))}


async def test_event_topics_keep_history_forever(kafka_bootstrap: str, unique_prefix: str) -> None:
    specs = event_topic_specs(partitions=4, prefix=unique_prefix)
    assert {s.name.removeprefix(unique_prefix) for s in specs} >= {"sb.events.message", "sb.events.contact"}
    await ensure_topics(kafka_bootstrap, specs)
    for spec in specs:
        configs = await _configs(kafka_bootstrap, spec.name)
        assert configs["cleanup.policy"] == "delete", spec.name
        assert configs["retention.ms"] == "-1", spec.name
        assert configs["retention.bytes"] == "-1", spec.name
        assert configs["partitions"] == "4", spec.name


async def test_an_existing_topic_with_other_partitions_is_refused(kafka_bootstrap: str, unique_prefix: str) -> None:
    await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=2, prefix=unique_prefix))
    with pytest.raises(TopicMismatch, match="has 2 partitions but Switchboard needs 3"):
        await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=3, prefix=unique_prefix))
