"""Dead letters of status callbacks kept on Kafka, keyed by message id, for audit and redelivery."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaProducer

from connectors.callbacks import DeadLetter, DeadLetterSink
from switchboard.kafka_io import new_producer
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics
from switchboard.tracing import record_headers

DEAD_LETTER_TOPIC = "sb.deadletters"


def dead_letter_document(letter: DeadLetter) -> dict[str, Any]:
    """The JSON record of one dead letter: the event as it was to be POSTed, why it was given up, attempts."""
    return {"kind": "status-callback", "target_url": letter.target_url, "cause": str(letter.cause),
            "reason": letter.reason, "attempts": letter.attempts, "last_status": letter.last_status,
            "event": json.loads(letter.event.to_json())}


class KafkaDeadLetterSink:
    """A DeadLetterSink writing each letter with acks=all before returning, keyed by message id (so in order)."""

    def __init__(self, bootstrap: str, topic: str = DEAD_LETTER_TOPIC, partitions: int = 6) -> None:
        self._bootstrap = bootstrap
        self._spec = TopicSpec(topic, partitions, config=AUDIT_LOG_CONFIG)
        self._producer: AIOKafkaProducer | None = None

    @property
    def topic(self) -> str:
        return self._spec.name

    async def start(self) -> None:
        await ensure_topics(self._bootstrap, [self._spec])
        self._producer = new_producer(self._bootstrap)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def put(self, letter: DeadLetter) -> None:
        """Writes the letter durably; raises if the sink was not started or the broker refuses it."""
        if self._producer is None:
            raise RuntimeError("KafkaDeadLetterSink.put before start()")
        body = json.dumps(dead_letter_document(letter), sort_keys=True, separators=(",", ":")).encode()
        headers = [("cause", str(letter.cause).encode()), ("kind", b"status-callback"), *record_headers()]
        await self._producer.send_and_wait(self.topic, body, key=letter.event.message_id.encode(), headers=headers)


def sink_to_use(given: DeadLetterSink | None, bootstrap: str, topic: str = DEAD_LETTER_TOPIC,
                partitions: int = 6) -> tuple[DeadLetterSink, KafkaDeadLetterSink | None]:
    """The sink to put letters in, and the Kafka sink the caller owns (starts and stops) when none was given."""
    if given is not None:
        return given, None
    kafka = KafkaDeadLetterSink(bootstrap, topic, partitions)
    return kafka, kafka
