"""`bin/bench floor`: what a message costs, on this machine, in the parts no implementation of the design can skip.

A message is 4 HTTP exchanges in WhatsApp's wire format (the send, then the sent, delivered and read webhooks,
each signed), the Kafka records it writes, and the records faust agents and plain consumers read. Each of those
is measured here alone, at its best (keep-alive connections, concurrency 64, large batches), with nothing of ours
in it: an aiohttp client posting a signed status webhook to an aiohttp server that checks the signature, parses
the body and answers; an aiokafka producer (acks=all) and consumer; and a faust agent that does nothing with its
records. Multiplied by a message's counts (from an end-to-end run's records per topic, or the defaults below,
`bin/bench e2e --messages 5000 --workers 1` of 2026-11-26) they give the floor: the CPU a message would cost if
everything of Switchboard's own cost nothing, and the messages/s that floor leaves on this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import ClientSession, TCPConnector, web
from aiokafka import AIOKafkaConsumer

from bench._common import BenchBroker, benchmark_broker, own_cpu_seconds, print_machine
from bench._floor import MessageShape, UnitCosts, budget_share, ceiling, floor_parts
from bench.pipeline_bench import process_cpu
from connectors._hub import SIGNATURE_HEADER, hub_signature, verify_hub_signature
from connectors._whatsapp_bodies import status_object, status_webhook_body
from switchboard.kafka_io import Headers, new_producer, send_in_batches
from switchboard.topics import TopicSpec, ensure_topics

__all__ = ["measure_floor", "print_floor"]

BENCH_PORT = 31892  # the floor's own broker; 24092-26092, 31092 and 31692 belong to other benchmarks
HTTP_PORT = 31992  # the bare aiohttp server's
SECRET = "floor-bench-app-secret"
CONCURRENCY = 64
PARTITIONS = 6
# Records per message by kind, from `bin/bench e2e --messages 5000 --workers 1` at 9f958f8 (2026-11-26, 06:54):
# 22.51 written; 3.00 raw webhooks read by the normaliser; 5.09 commands and 1.09 dispatch jobs read by faust agents.
DEFAULT_SHAPE = MessageShape(produced=22.51, consumed_plain=3.00, consumed_faust=6.18)


@dataclass(frozen=True)
class Spent:
    """CPU seconds of the measuring side and of the broker over `units` units of work."""

    units: int
    own: float
    broker: float

    def own_us(self) -> float:
        return 1e6 * self.own / self.units

    def broker_us(self) -> float:
        return 1e6 * self.broker / self.units


def webhook_body() -> bytes:
    """A `delivered` status webhook as the simulator (and Meta) sends it, with pricing."""
    status = status_object("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA", "delivered",
                           int(time.time()), "4917000000001",
                           pricing={"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"})
    return json.dumps(status_webhook_body("102290129340398", "106540352242922", "15550783881", [status])).encode()


# -- HTTP ------------------------------------------------------------------------------------------------------------

async def _receive(request: web.Request) -> web.Response:
    """What any webhook endpoint must do: read the body, check its signature, parse it, answer."""
    body = await request.read()
    verify_hub_signature(request.headers, body, SECRET)
    json.loads(body)
    return web.Response(text="ok")


def serve_http(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhook", _receive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


async def _post_all(session: ClientSession, url: str, body: bytes, count: int) -> None:
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(body, SECRET)}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post() -> None:
        async with gate, session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"the bare server answered {response.status}")

    await asyncio.gather(*(post() for _ in range(count)))


async def http_exchanges(count: int, port: int = HTTP_PORT) -> tuple[Spent, Spent]:
    """(client, server) CPU over `count` signed webhook exchanges; the server is a process of its own."""
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.floor_bench", "serve-http", str(port))
    url, body = f"http://127.0.0.1:{port}/webhook", webhook_body()
    try:
        async with ClientSession(connector=TCPConnector(limit=CONCURRENCY)) as session:
            await _until_serving(session, url, body)
            await _post_all(session, url, body, 500)  # warm: connections open, code paths run once
            before, server_before = own_cpu_seconds(), process_cpu(server.pid)
            await _post_all(session, url, body, count)
            client, served = own_cpu_seconds() - before, process_cpu(server.pid) - server_before
    finally:
        server.terminate()
        await server.wait()
    return Spent(count, client, 0.0), Spent(count, served, 0.0)


async def _until_serving(session: ClientSession, url: str, body: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await _post_all(session, url, body, 1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # the server process is still starting: nothing to wait on but its port


# -- Kafka -----------------------------------------------------------------------------------------------------------

def _record(n: int) -> tuple[bytes, bytes]:
    """A key of one of 1,000 contacts and a value the size of a message-status event (about 400 bytes)."""
    return f"contact-{n % 1000}".encode(), json.dumps({"n": n, "pad": "x" * 380}).encode()


async def produce(bootstrap: str, topic: str, count: int, broker: BenchBroker) -> Spent:
    """Records sent 500 at a time as record batches per partition (`send_in_batches`, as the contact writer's
    outbox sends its events), each 500's acknowledgements awaited, as the pipeline's batches are."""
    producer = new_producer(bootstrap, linger_ms=2)
    await producer.start()
    rounds = [_round(first, min(first + 500, count)) for first in range(0, count, 500)]  # built before measuring
    try:
        meter = _Meter(broker)
        for by_partition in rounds:
            sent = [future for partition, records in by_partition.items()
                    for future in await send_in_batches(producer, topic, partition, records)]
            await asyncio.gather(*sent)
        return meter.spent(count)
    finally:
        await producer.stop()


def _round(first: int, end: int) -> dict[int, list[tuple[bytes | None, bytes, Headers]]]:
    """Records `first` to `end` by partition."""
    by_partition: dict[int, list[tuple[bytes | None, bytes, Headers]]] = {}
    for n in range(first, end):
        key, value = _record(n)
        by_partition.setdefault(n % PARTITIONS, []).append((key, value, []))
    return by_partition


async def consume(bootstrap: str, topic: str, count: int, broker: BenchBroker) -> Spent:
    """Records read from the start of `topic` by a plain consumer in a group, committing after each fetch."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-floor-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    try:
        meter, seen = _Meter(broker), 0
        while seen < count:
            seen += sum(len(records) for records in (await consumer.getmany(timeout_ms=1000)).values())
            await consumer.commit()
        return meter.spent(seen)
    finally:
        await consumer.stop()


async def through_faust(bootstrap: str, topic: str, count: int, broker: BenchBroker) -> Spent:
    """Records of `topic` through a faust agent that does nothing (bench/_faust_floor.py), its own process."""
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench._faust_floor", bootstrap, topic,
                                                  str(count), stdout=asyncio.subprocess.PIPE)
    try:
        first = await _reported(worker, "first")
        meter = _Meter(broker)
        done = await _reported(worker, "done")
        return Spent(count, done - first, meter.spent(count).broker)
    finally:
        worker.terminate()
        await worker.wait()


async def _reported(worker: asyncio.subprocess.Process, word: str, timeout: float = 180.0) -> float:
    """The CPU seconds the faust worker printed after `word`."""
    assert worker.stdout is not None
    while True:
        line = (await asyncio.wait_for(worker.stdout.readline(), timeout)).decode()
        if not line:
            raise RuntimeError(f"the faust worker ended before reporting '{word}'")
        if line.startswith(f"{word} "):
            return float(line.split()[1])


class _Meter:
    """This process's CPU and the broker's, from its creation to `spent`."""

    def __init__(self, broker: BenchBroker) -> None:
        self._pids = broker.pids() or []
        self._own, self._broker = own_cpu_seconds(), self._broker_seconds()

    def spent(self, units: int) -> Spent:
        return Spent(units, own_cpu_seconds() - self._own, self._broker_seconds() - self._broker)

    def _broker_seconds(self) -> float:
        return sum(process_cpu(pid) for pid in self._pids)


# -- the floor -------------------------------------------------------------------------------------------------------

async def measure_floor(broker: BenchBroker, records: int, exchanges: int) -> UnitCosts:
    """Every unit cost, measured on `broker` (its CPU is counted when it is this machine's own)."""
    topic, warm = f"bench-floor-{uuid.uuid4().hex[:6]}", f"bench-floor-warm-{uuid.uuid4().hex[:6]}"
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, PARTITIONS), TopicSpec(warm, PARTITIONS)])
    await produce(broker.bootstrap, warm, min(records, 20_000), broker)  # the broker's JIT at work, not measured
    produced = await produce(broker.bootstrap, topic, records, broker)
    consumed = await consume(broker.bootstrap, topic, records, broker)
    faust = await through_faust(broker.bootstrap, topic, records, broker)
    client, server = await http_exchanges(exchanges)
    return UnitCosts(client.own_us(), server.own_us(), produced.own_us(), consumed.own_us(), faust.own_us(),
                     produced.broker_us(), consumed.broker_us(), faust.broker_us())


def print_floor(costs: UnitCosts, shape: MessageShape, cores: int, row: Callable[[str, str], None]) -> float:
    """The unit costs, the message's shape, the floor per part and the ceiling it leaves, as table rows; returns
    the floor's CPU milliseconds per message."""
    row("floor units (CPU µs): HTTP exchange, client / server",
        f"{costs.http_client_us:.0f} / {costs.http_server_us:.0f}")
    row("floor units (CPU µs per record): produce, plain consume, faust agent (client side)",
        f"{costs.produce_us:.1f}, {costs.consume_us:.1f}, {costs.faust_us:.1f}")
    row("floor units (CPU µs per record): the broker's share of each",
        f"{costs.broker_produce_us:.1f}, {costs.broker_consume_us:.1f}, {costs.broker_faust_us:.1f}")
    row("a message's shape", f"{shape.exchanges:g} HTTP exchanges, {shape.produced:.2f} records written, "
        f"{shape.consumed_plain:.2f} read by plain consumers, {shape.consumed_faust:.2f} by faust agents")
    parts = floor_parts(costs, shape)
    total = sum(parts.values())
    row("floor per message (CPU ms)", ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items())
        + f"; total {total:.2f} ({budget_share(total, cores):.0%} of the 1,000 msg/s budget on {cores} cores)")
    row(f"ceiling the floor leaves on {cores} cores", f"{ceiling(total, cores):,.0f} messages/s")
    return total


def _print_row(name: str, value: str) -> None:
    print(f"| {name} | {value} |", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve-http"]:
        serve_http(int(arguments[1]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="records of each Kafka measurement")
    parser.add_argument("--exchanges", type=int, default=20_000, help="HTTP exchanges measured")
    args = parser.parse_args(arguments)
    print_machine()
    with benchmark_broker("bench-floor", BENCH_PORT) as broker:
        costs = asyncio.run(measure_floor(broker, args.records, args.exchanges))
    print("| figure | value |\n| --- | --- |")
    print_floor(costs, DEFAULT_SHAPE, os.cpu_count() or 1, _print_row)


if __name__ == "__main__":
    main()
