"""Callbacks a business system refuses end on the dead-letter topic, in order, with the reason."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from connectors import InMemoryTransport, Secret, TransportRequest, TransportResponse
from connectors.callback_deadletters import KafkaDeadLetterSink
from connectors.callbacks import CallbackDispatcher, CallbackEvent, CallbackTarget
from streams.policies import RetryPolicy
from switchboard.kafka_io import collect_json


def _refuse(request: TransportRequest) -> TransportResponse:
    return TransportResponse(410, {}, b'{"error":"gone"}')


async def _no_wait(seconds: float) -> None:
    return None  # delays are the policy's business; this test is about where letters go


async def test_refused_callbacks_land_on_the_dead_letter_topic_in_order(kafka_bootstrap: str,
                                                                       unique_prefix: str) -> None:
    sink = KafkaDeadLetterSink(kafka_bootstrap, topic=f"{unique_prefix}sb.deadletters", partitions=3)
    await sink.start()
    try:
        dispatcher = CallbackDispatcher(InMemoryTransport(handler=_refuse), RetryPolicy(max_attempts=3), sink,
                                        sleep=_no_wait, rng=random.Random(1))
        events = [CallbackEvent("msg-1", "acme", kind, n, datetime(2026, 11, 25, 12, n, tzinfo=UTC), {"n": n})
                  for n, kind in enumerate(["MessageSent", "MessageDelivered", "MessageRead"])]
        await dispatcher.deliver(CallbackTarget("https://crm.example/hooks", Secret("s3cret-value")), events)
    finally:
        await sink.stop()

    # One key, so one partition: the order read is the order written.
    letters = await collect_json(kafka_bootstrap, sink.topic, lambda seen: len(seen) >= 3, timeout=30)
    causes = [(letter["event"]["sequence"], letter["cause"]) for letter in letters]
    assert causes == [(0, "rejected"), (1, "skipped"), (2, "skipped")]
    assert letters[0]["last_status"] == 410
    assert all(letter["target_url"] == "https://crm.example/hooks" for letter in letters)
    assert "s3cret-value" not in json.dumps(letters)

