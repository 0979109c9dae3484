"""Triggers turn business events into messages, and a changed pipeline.toml takes effect without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregates import Contact
from schemas import encode, make_envelope
from streams.pipeline._runtime import Topics
from switchboard.kafka_io import new_producer
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import (
    TENANT,
    message_events,
    payloads,
    request,
    routed_channels,
    send_commands,
    terminal_count,
    write_pipeline,
)

TRIGGER = """
[[triggers]]
name = "vip-shipping-notice"
tenant = "acme"
event = "OrderShipped"
condition = '"vip" in customer.tags'
template = "order_shipped"
variables = { order_id = "event.order_id" }
"""


def contact(ref: str, tags: list[str]) -> tuple[str, dict[str, Any]]:
    cid = str(Contact.create_id(TENANT, ref))
    return cid, {"kind": "contact", "v": 1, "command_id": f"contact-{ref}", "tenant": TENANT, "contact_id": cid,
                 "contact": {"external_ref": ref, "addresses": {"whatsapp": "+4917012312312"},
                             "attributes": {"tags": tags, "first_name": "Ana"}}}


def order_shipped(order_id: str, customer: str) -> bytes:
    record = {"envelope": make_envelope(aggregate_type="Order", aggregate_id=order_id, aggregate_version=2,
                                       occurred_at=datetime.now(UTC), tenant_id=TENANT),
              "order_id": order_id, "customer_id": customer, "carrier": "DHL", "tracking_number": None,
              "tracking_url": None, "estimated_delivery": None}
    return encode(record, "OrderShipped")


async def test_a_business_event_triggers_a_message_for_matching_customers_only(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    await start_pipeline(write_pipeline(tmp_path, extra=TRIGGER))
    await send_commands(kafka_bootstrap, unique_prefix, [contact("vip-ana", ["vip"]), contact("plain-bo", [])])
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        for order, customer in (("A-1", "vip-ana"), ("B-2", "plain-bo")):
            await producer.send_and_wait(Topics(unique_prefix).business_events, order_shipped(order, customer),
                                         key=order.encode())
    finally:
        await producer.stop()
    per_message = await message_events(kafka_bootstrap, unique_prefix,
                                       lambda got: sum(map(terminal_count, got.values())) >= 1)
    [events] = per_message.values()
    [requested] = payloads(events, "MessageRequested")
    assert requested["contact_id"] == str(Contact.create_id(TENANT, "vip-ana"))
    assert requested["requested_by"] == "trigger:vip-shipping-notice"
    assert "order_id=A-1" in payloads(events, "MessageRendered")[0]["body"]


def _terminal_at_least(count: int) -> Callable[[dict[str, list[tuple[str, dict[str, Any]]]]], bool]:
    return lambda got: sum(map(terminal_count, got.values())) >= count


async def test_a_changed_route_takes_effect_without_a_restart(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    config = write_pipeline(tmp_path)
    worker = await start_pipeline(config)
    await send_commands(kafka_bootstrap, unique_prefix, [request("before", "before-change")])
    before = await message_events(kafka_bootstrap, unique_prefix, lambda got: len(got) >= 1)
    assert routed_channels(next(iter(before.values()))) == ["whatsapp"]
    config.write_text(config.read_text().replace('name = "default"\ntenant = "acme"\nchannel = "whatsapp"\n'
                                                 'fallback = ["sms"]',
                                                 'name = "default"\ntenant = "acme"\nchannel = "sms"'))
    deadline, sent = time.monotonic() + 60, 1
    while True:  # the watcher polls the file; each probe message shows which declaration routed it
        await send_commands(kafka_bootstrap, unique_prefix, [request(f"after-{sent}", f"after-{sent}")])
        sent += 1
        got = await message_events(kafka_bootstrap, unique_prefix, _terminal_at_least(sent))
        if any(routed_channels(e) == ["sms"] for e in got.values()):
            break
        assert time.monotonic() < deadline, "the new route was never used"
    assert worker.is_running(), worker.log_tail()
