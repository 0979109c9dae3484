"""The simulator posts webhooks one at a time in due order by default, and up to webhook_concurrency at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from connectors.whatsapp import GRAPH_API_VERSION
from connectors.whatsapp_simulator import DEFAULT_PHONE_NUMBER_ID, WhatsAppSimulator, _parser, config_from_args
from switchboard.serving import serving

MESSAGES = 4


class HoldingReceiver:
    """Answers each webhook only once `hold_until` of them are in flight together; records their statuses."""

    def __init__(self, hold_until: int) -> None:
        self.hold_until, self.in_flight, self.peak = hold_until, 0, 0
        self.statuses: list[tuple[str, str]] = []  # (wamid, status) in arrival order
        self.enough = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.hold_until:
            self.enough.set()
        await self.enough.wait()
        self.in_flight -= 1
        async with self.arrived:
            self.statuses.extend((s["id"], s["status"]) for s in body["entry"][0]["changes"][0]["value"]["statuses"])
            self.arrived.notify_all()
        return web.Response(text="ok")

    async def wait_for(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.statuses) >= count), 10)


@asynccontextmanager
async def simulator_posting_to(receiver: HoldingReceiver, **options: Any) -> AsyncIterator[WhatsAppSimulator]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with serving(app) as url:
        simulator = WhatsAppSimulator(webhook_url=f"{url}/hook", enforce_window=False, receipt_interval=0.0,
                                      webhook_timeout=3.0, **options)
        await simulator.start()
        try:
            yield simulator
        finally:
            await simulator.stop()


async def send(simulator: WhatsAppSimulator, count: int) -> None:
    url = f"{simulator.url}/{GRAPH_API_VERSION}/{DEFAULT_PHONE_NUMBER_ID}/messages"
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            body = {"messaging_product": "whatsapp", "to": f"+1555123{n:04d}", "type": "text", "text": {"body": "hi"}}
            async with session.post(url, data=json.dumps(body), headers={"Authorization": "Bearer any",
                                                                         "Content-Type": "application/json"}) as answer:
                assert answer.status == 200


async def test_webhooks_go_one_at_a_time_in_due_order_by_default() -> None:
    receiver = HoldingReceiver(hold_until=1)
    async with simulator_posting_to(receiver) as simulator:
        await send(simulator, MESSAGES)
        await receiver.wait_for(3 * MESSAGES)
    assert receiver.peak == 1
    for wamid in {wamid for wamid, _ in receiver.statuses}:
        assert [s for w, s in receiver.statuses if w == wamid] == ["sent", "delivered", "read"]


async def test_webhooks_go_several_at_once_up_to_the_concurrency() -> None:
    # Each webhook is answered only once four are in flight together: posted one at a time, none would be.
    receiver = HoldingReceiver(hold_until=4)
    async with simulator_posting_to(receiver, webhook_concurrency=4) as simulator:
        await send(simulator, MESSAGES)
        await receiver.wait_for(3 * MESSAGES)
        assert simulator.counters.webhook_failures == 0
    assert receiver.peak == 4
    assert sorted(s for _, s in receiver.statuses) == sorted(["sent", "delivered", "read"] * MESSAGES)


async def test_stop_drains_the_webhooks_in_flight() -> None:
    receiver = HoldingReceiver(hold_until=1)
    async with simulator_posting_to(receiver, webhook_concurrency=8) as simulator:
        await send(simulator, MESSAGES)
    assert len(receiver.statuses) == 3 * MESSAGES  # stop() drained the queue and the posts in flight


def test_the_command_line_sets_the_webhook_concurrency() -> None:
    assert config_from_args(_parser().parse_args(["--webhook-concurrency", "64"]), {}).webhook_concurrency == 64
    assert config_from_args(_parser().parse_args([]), {}).webhook_concurrency == 1
