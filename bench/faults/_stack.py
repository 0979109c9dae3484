"""One scenario's platform: its topics (a prefix of its own), pipeline workers as child processes, and the
WhatsApp simulator, webhook receiver and normaliser when receipts flow; terminal states followed as they land."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregates import Contact, Message
from bench._declaration import SENDER, Declaration, Retry
from bench.faults._check import RECEIPTS, TERMINAL, message_decoder
from bench.faults._ledger import Ledger
from bench.faults._log import Record, TopicLog
from connectors.whatsapp_simulator import WhatsAppSimulator
from schemas import ProjectedDecoder
from streams.pipeline.app import PipelineSettings
from switchboard._demo_stack import (
    NORMALISER_BANNER,
    RECEIVER_BANNER,
    DemoSecrets,
    NormaliserCommand,
    Processes,
    ReceiverCommand,
    wait_for_line,
)
from switchboard.kafka_io import new_producer
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess

TENANT = "acme"
CONTACTS_PER_MESSAGE = 4  # a contact gets every fourth message: queues per contact, order across a takeover
Worker = WorkerProcess[PipelineSettings]

RETRIES = {"default": Retry(max_attempts=3, base_seconds=0.2, factor=2.0, cap_seconds=1.0),
           "faults": Retry(max_attempts=4, base_seconds=0.2, factor=2.0, cap_seconds=1.0)}


def declaration(partitions: int, replication: int, driver: str, settings: Mapping[str, str], per_second: float,
                burst: float | None) -> str:
    """The fault suite's declaration: the benchmarks' pipeline with an SMS fallback and retry policies."""
    return Declaration(partitions, tenant=TENANT, tenant_name="Acme", driver=driver, settings=settings, sender=SENDER,
                       per_second=per_second, burst=burst, replication=replication, sms_fallback=True,
                       retries=RETRIES, route_retry="faults", reconcile_seconds=3).text()


class PartDied(Exception):
    """Every pipeline worker of the run has stopped while messages were still awaited."""


@dataclass
class Platform:
    """A scenario's running parts; `close` stops every one of them."""

    bootstrap: str
    directory: Path
    scenario: str
    partitions: int = 6
    replication: int = -1
    prefix: str = field(default="")
    ledger: Ledger = field(default_factory=Ledger)
    processes: Processes = field(default_factory=Processes)
    workers: list[Worker] = field(default_factory=list)
    simulator: WhatsAppSimulator | None = None
    secrets: DemoSecrets | None = None
    receiver_url: str = ""
    terminal: set[str] = field(default_factory=set)
    accepted_on: dict[str, str] = field(default_factory=dict)  # message id -> channel it was accepted on
    read: set[str] = field(default_factory=set)
    _attempted_on: dict[str, str] = field(default_factory=dict)
    _decode: ProjectedDecoder = field(default_factory=message_decoder)
    _events: TopicLog | None = None
    _config: Path | None = None

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"faults-{self.scenario}-{uuid.uuid4().hex[:6]}-"
        self.directory.mkdir(parents=True, exist_ok=True)

    # -- set-up --------------------------------------------------------------------------------------------------

    def declare(self, *, driver: str = "inprocess", settings: Mapping[str, str] | None = None,
                per_second: float = 5000, burst: float | None = None) -> Path:
        """pipeline.toml: WhatsApp falling back to SMS, retries under the "faults" policy, reconcile every 3 s."""
        self._config = self.directory / "pipeline.toml"
        self._config.write_text(declaration(self.partitions, self.replication, driver, settings or {}, per_second,
                                            burst))
        return self._config

    def settings(self, name: str) -> PipelineSettings:
        assert self._config is not None, "declare() first"
        return PipelineSettings(bootstrap=self.bootstrap, data_dir=str(self.directory / name / "state"),
                                config_path=str(self._config), app_id=f"{self.prefix}pipeline",
                                topic_prefix=self.prefix, worker_name=name, partitions=self.partitions,
                                replication=self.replication)

    async def start(self) -> None:
        """Topics, then the message-event follower (terminal states as they land)."""
        await ensure_topics(self.bootstrap, self.settings("topics").topic_specs())
        self._events = TopicLog(self.bootstrap, self.prefix + "sb.events.message", on_record=self._saw)
        await self._events.start()
        self._events.follow()

    def start_worker(self, name: str) -> Worker:
        env = self.secrets.child_environment() if self.secrets else None
        worker: Worker = WorkerProcess(self.settings(name), self.directory / f"{name}.log", env=env)
        self.processes.start(worker)
        self.workers.append(worker)
        return worker

    async def start_webhooks(self, simulator: WhatsAppSimulator, secrets: DemoSecrets) -> None:
        """The receiver (its URL goes to the simulator) and the normaliser, as children with WhatsApp's secrets."""
        self.simulator, self.secrets = simulator, secrets
        assert self._config is not None
        env = secrets.child_environment()
        receiver = WorkerProcess(ReceiverCommand(self.bootstrap, self.prefix, self.partitions),
                                 self.directory / "receiver.log", env=env)
        self.processes.start(receiver)
        banner = await wait_for_line(receiver, RECEIVER_BANNER, self.processes, 120)
        self.receiver_url = f"{banner[1]}/webhooks/whatsapp"
        simulator.webhook_url = self.receiver_url
        normaliser = WorkerProcess(NormaliserCommand(self.bootstrap, self.prefix, str(self._config)),
                                   self.directory / "normaliser.log", env=env)
        self.processes.start(normaliser)
        await wait_for_line(normaliser, NORMALISER_BANNER, self.processes, 120)

    # -- load ----------------------------------------------------------------------------------------------------

    async def request(self, first: int, count: int, per_contact: int = CONTACTS_PER_MESSAGE) -> None:
        """`count` request commands numbered from `first`, `per_contact` (4) to each contact, sent with acks=all."""
        contacts = max(1, (first + count) // per_contact)
        producer = new_producer(self.bootstrap, linger_ms=5, request_timeout_ms=60_000)
        await producer.start()
        try:
            sent = []
            for n in range(first, first + count):
                key, command = self._request(n, n % contacts)
                sent.append(await producer.send(self.prefix + "sb.commands", json.dumps(command).encode(),
                                                key=key.encode()))
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    def _request(self, n: int, contact: int) -> tuple[str, dict[str, Any]]:
        ref, key = f"customer-{contact}", f"{self.prefix}m-{n}"
        contact_id = str(Contact.create_id(TENANT, ref))
        phone = f"+49170{contact:08d}"
        self.ledger.requested[str(Message.create_id(TENANT, key))] = key
        return contact_id, {
            "kind": "request", "v": 1, "command_id": f"req-{key}", "tenant": TENANT, "contact_id": contact_id,
            "contact": {"external_ref": ref, "addresses": {"whatsapp": phone, "sms": phone}},
            "message": {"idempotency_key": key, "category": "utility", "template": "order_shipped",
                        "parameters": {"order_id": f"o-{n}"}, "priority": "normal"}}

    # -- waiting -------------------------------------------------------------------------------------------------

    def _saw(self, record: Record) -> None:
        decoded = self._decode(record.value)
        if decoded is None:  # a schema id this code does not know
            return
        event_type, payload = decoded
        message_id = payload["envelope"]["aggregate_id"]
        if event_type in TERMINAL or event_type in RECEIPTS:  # see History.settled
            self.terminal.add(message_id)
        if event_type == "MessageDispatchAttempted":
            self._attempted_on[message_id] = str(payload["channel"])
        if event_type == "MessageAcceptedByProvider":
            self.accepted_on[message_id] = self._attempted_on.get(message_id, "")
        if event_type == "MessageRead":
            self.read.add(message_id)

    def settled(self) -> int:
        """Requested messages with a terminal state so far."""
        return sum(1 for message_id in self.ledger.requested if message_id in self.terminal)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float) -> float:
        """Waits for `condition` (checked every 0.1 s); the seconds it took. TimeoutError or PartDied otherwise."""
        started = time.monotonic()
        while not condition():
            self._alive()
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.scenario}: {what} not within {timeout:.0f} s "
                                   f"({self.settled():,} of {len(self.ledger.requested):,} messages settled)")
            await asyncio.sleep(0.1)  # the follower task updates the sets; nothing to be notified by
        return time.monotonic() - started

    async def until_settled(self, count: int, timeout: float) -> float:
        """Until `count` requested messages have settled; TimeoutError when none settles for `stall` seconds (on a
        loaded machine the pace varies tenfold, so progress is the test, not a fixed rate) or after `timeout`.
        The first acceptance waits for the writer's first pass over every request (the outcomes queue behind them
        on sb.commands), hence a stall allowance that grows with the backlog."""
        stall = max(240.0, len(self.ledger.requested) / 50)
        started, last, seen = time.monotonic(), time.monotonic(), self.settled()

        def progressing() -> bool:
            nonlocal last, seen
            now = self.settled()
            if now > seen:
                last, seen = time.monotonic(), now
            elif time.monotonic() - last > stall:
                raise TimeoutError(f"{self.scenario}: no message settled for {stall:.0f} s ({now:,} of "
                                   f"{len(self.ledger.requested):,} settled, {count:,} awaited)")
            return now >= count

        await self.until(progressing, f"{count:,} messages settled", timeout)
        return time.monotonic() - started

    def _alive(self) -> None:
        running = [w for w in self.workers if w.is_running()]
        if self.workers and not running:
            last = self.workers[-1]
            raise PartDied(f"every pipeline worker has stopped; {last.log_file} ends with:\n{last.log_tail(40)}")
        for process in self.processes.started:
            if process not in self.workers and not process.is_running():
                raise PartDied(f"{process.config.worker_name} stopped; its log ends with:\n{process.log_tail(40)}")

    def whatsapp_read(self) -> bool:
        """Every message accepted on WhatsApp has its read receipt applied (the simulator posts sent, delivered,
        read for each)."""
        on_whatsapp = [m for m, channel in self.accepted_on.items() if channel == "whatsapp"]
        return all(m in self.read for m in on_whatsapp)

    # -- end -----------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        try:
            if self._events is not None:
                await self._events.stop()
        finally:
            await asyncio.to_thread(self.processes.stop_all)


def running(workers: Sequence[Worker]) -> list[Worker]:
    return [w for w in workers if w.is_running()]
