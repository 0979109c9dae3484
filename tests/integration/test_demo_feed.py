"""The demo's feed on a real broker: every record acknowledged, each key's records in order across full batches."""

from __future__ import annotations

from switchboard._demo_feed import Feed
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.test_normaliser_batches import PARTITIONS, read_all


async def test_the_feed_keeps_each_keys_order_across_full_batches(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "feed"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS, 1)])
    # 4,800 records of about 640 bytes: 3 MB, more than one 512 KiB batch for every partition.
    records = [(f"order-{n % 12}", f"{n:06d}".encode() * 106) for n in range(4_800)]
    feed = Feed(kafka_bootstrap)
    await feed.start()
    try:
        assert await feed.send(topic, records) == len(records)
    finally:
        await feed.stop()
    seen = await read_all(kafka_bootstrap, topic, len(records))
    assert len(seen) == len(records)
    for key in {key for key, _ in records}:
        assert [value for _, k, value, _ in seen if k == key.encode()] == [v for k, v in records if k == key]
