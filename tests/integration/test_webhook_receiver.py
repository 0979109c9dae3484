"""The receiver on a real broker: the simulator's signed receipts land on the raw topic, bad posts on rejects."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from connectors import SIGNATURE_HEADER, ReceiptItem, ReceiptStatus, hub_signature
from connectors._receiver_sinks import digest_partition
from connectors.receiver import CONTENT_SHA256, KafkaWebhookSink, ReceiverConfig, build_receiver_app
from connectors.whatsapp import WhatsAppDriver
from connectors.whatsapp_simulator import WhatsAppSimulator
from switchboard.serving import serving as serve_app
from tests.contract.whatsapp_support import ACCESS_TOKEN, APP_SECRET, RECIPIENT, driver_config, text_message

Records = list[ConsumerRecord]


@asynccontextmanager
async def serving(driver: WhatsAppDriver, sink: KafkaWebhookSink) -> AsyncIterator[str]:
    """The receiver app on 127.0.0.1 with an ephemeral port; yields its WhatsApp webhook URL."""
    async with serve_app(build_receiver_app(ReceiverConfig({"whatsapp": driver}), sink), shutdown_timeout=1.0) as url:
        yield f"{url}/webhooks/whatsapp"


async def read_until(bootstrap: str, topic: str, done: Callable[[Records], bool], timeout: float = 30.0) -> Records:
    """Reads the topic from the beginning until done(records) holds and the end offsets are reached."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: Records = []
    deadline = time.monotonic() + timeout
    try:
        while not (done(records) and await _at_end(consumer)):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{topic}: condition not met after {timeout}s; saw {len(records)} records"
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            records.extend(record for batch in batches.values() for record in batch)
    finally:
        await consumer.stop()
    return records


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    assigned: set[TopicPartition] = consumer.assignment()
    if not assigned:
        return False
    ends = await consumer.end_offsets(list(assigned))
    positions = {tp: await consumer.position(tp) for tp in assigned}
    return all(positions[tp] >= ends[tp] for tp in assigned)


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def receipts(driver: WhatsAppDriver, records: Records, message_id: str) -> list[ReceiptItem]:
    items = [item for record in records for item in driver.parse_webhook(record.value)]
    return [item for item in items if isinstance(item, ReceiptItem) and item.message_id == message_id]


async def test_signed_receipts_reach_the_raw_topic_and_bad_posts_the_rejects(kafka_bootstrap: str,
                                                                             unique_prefix: str) -> None:
    sink = KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=3)
    receiver_driver = WhatsAppDriver(driver_config())
    async with sink, serving(receiver_driver, sink) as url, \
            WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret=APP_SECRET, webhook_url=url) as simulator:
        simulator.open_window(RECIPIENT)
        async with WhatsAppDriver(driver_config(simulator.url)) as sender:
            result = await sender.send(text_message("order-7001"))
        assert result.accepted, result

        def three_receipts(records: Records) -> bool:
            return len(receipts(receiver_driver, records, "order-7001")) >= 3

        raw = await read_until(kafka_bootstrap, sink.raw_topic, three_receipts)
        statuses = {r.status for r in receipts(receiver_driver, raw, "order-7001")}
        assert statuses == {ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ}
        for record in raw:
            headers = headers_of(record)
            assert (headers["channel"], headers["signature-verified"]) == ("whatsapp", "true")
            assert headers[CONTENT_SHA256] == hashlib.sha256(record.value).hexdigest() == record.key.decode()
            assert record.partition == digest_partition(headers[CONTENT_SHA256], 3)  # beside any duplicate of it
            # The stored bytes are exactly the signed ones: the simulator's signature verifies on them.
            receiver_driver.verify_webhook({SIGNATURE_HEADER: hub_signature(record.value, APP_SECRET)}, record.value)

        body = raw[0].value
        async with aiohttp.ClientSession() as http:
            unsigned = await http.post(url, data=body, headers={"Content-Type": "application/json"})
            wrong = await http.post(url, data=body, headers={SIGNATURE_HEADER: hub_signature(body, "wrong-secret")})
        assert (unsigned.status, wrong.status) == (401, 403)

    rejects = await read_until(kafka_bootstrap, sink.rejects_topic, lambda records: len(records) >= 2)
    assert sorted(headers_of(r)["reason"] for r in rejects) == ["signature_invalid", "signature_missing"]
    assert {r.value for r in rejects} == {body}
    assert {headers_of(r)["signature-present"] for r in rejects} == {"false", "true"}
    assert len(await read_until(kafka_bootstrap, sink.raw_topic, lambda records: True)) == len(raw)
    await receiver_driver.aclose()


async def test_a_body_at_the_size_limit_fits_in_one_record(kafka_bootstrap: str, unique_prefix: str) -> None:
    base = b'{"object": "whatsapp_business_account", "entry": []}'
    body = base + b" " * (ReceiverConfig({}).max_body_bytes - len(base))  # over Kafka's default 1 MiB record size
    driver = WhatsAppDriver(driver_config())
    sink = KafkaWebhookSink(kafka_bootstrap, prefix=unique_prefix, partitions=1)
    async with sink, serving(driver, sink) as url, aiohttp.ClientSession() as http:
        answer = await http.post(url, data=body, headers={SIGNATURE_HEADER: hub_signature(body, APP_SECRET)})
        assert answer.status == 200
    [record] = await read_until(kafka_bootstrap, sink.raw_topic, lambda records: len(records) >= 1)
    assert record.value == body
    await driver.aclose()
