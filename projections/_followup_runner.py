"""`switchboard followups`: the live process raising follow-ups; each is produced before its position is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from projections._followups import FollowUps
from projections._runner import catch_up, end_offsets
from projections._store import ProjectionStore
from schemas import encode
from switchboard.kafka_io import new_producer
from switchboard.observability import Observability, kafka_reachable
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics

__all__ = ["run_followups"]


async def run_followups(bootstrap: str, prefix: str, rules: FollowUps, store: ProjectionStore,
                        interval: float = 1.0, rounds: int | None = None,
                        on_ready: Callable[[], None] | None = None,
                        observability: Observability | None = None) -> int:
    """Applies new message events and raises due follow-ups every `interval` s; returns how many it raised.

    A fresh store starts at the topic's end: a follow-up is a call to action, and history already happened.
    With `observability`, each round is one event of the `followups` stage, and readiness needs the store's
    positions set and Kafka answering the producer.
    """
    observability = observability or Observability("followups")
    stage = observability.stage("followups")
    producer = new_producer(bootstrap)
    observability.readiness.add("kafka", lambda: kafka_reachable(lambda: producer.client))
    observability.readiness.add_flag("store", lambda: bool(store.positions()), "store positions set")
    topic, out = prefix + rules.topic, prefix + "sb.events.followup"
    partitions = len(await end_offsets(bootstrap, topic))
    await ensure_topics(bootstrap, [TopicSpec(out, partitions, -1, AUDIT_LOG_CONFIG)])
    if not store.positions():
        store.commit({}, await end_offsets(bootstrap, topic))
    if on_ready is not None:
        on_ready()  # from here on, every new message event is seen
    await producer.start()
    raised, done = 0, 0
    try:
        while rounds is None or done < rounds:
            with stage.observe():
                raised += await _round(bootstrap, topic, out, rules, store, producer)
            done += 1
            await asyncio.sleep(interval)  # the follow-up clock: due timers are checked once per interval
    finally:
        await producer.stop()
    return raised


async def _round(bootstrap: str, topic: str, out: str, rules: FollowUps, store: ProjectionStore,
                 producer: Any) -> int:
    raised: list[dict[str, Any]] = []

    async def publish(records: list[dict[str, Any]]) -> None:
        await _produce(producer, out, records)
        raised.extend(records)

    await catch_up(bootstrap, topic, rules, store, await end_offsets(bootstrap, topic), outputs=publish)
    changes, due = rules.due(store.items("due:"), store.get, datetime.now(UTC))
    await publish(due)  # durable before the timers that raised them are removed
    store.commit(changes, {})
    return len(raised)


async def _produce(producer: Any, topic: str, records: list[dict[str, Any]]) -> None:
    sent = [await producer.send(topic, encode(record, "FollowUpRequired"), key=record["contact_id"].encode())
            for record in records]
    await asyncio.gather(*sent)
