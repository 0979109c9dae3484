"""Playing the demo: inputs in, faults along the way, replies answered, every message followed to a final state."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer

from connectors.twilio_simulator import TwilioSimulator
from connectors.whatsapp_simulator import WhatsAppSimulator
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TemplateTopics
from switchboard._demo_campaign import Campaign, contact_of
from switchboard._demo_config import receipt_statuses
from switchboard._demo_feed import Feed, json_records
from switchboard._demo_finish import Finish
from switchboard._demo_report import Pace, progress_line
from switchboard._demo_scenario import Scenario
from switchboard._demo_stack import DemoSecrets, Processes
from switchboard._demo_template import TemplatePause, publish_command
from switchboard._demo_track import STALL_SECONDS, Tracker
from switchboard.config import PipelineConfig
from switchboard.localkafka import project_root

__all__ = ["Play", "Run"]

ERP_SLICES = 10  # the ERP stream arrives over this many seconds, not at once
# The campaign goes out in chunks (each produced in batches), the next once the pipeline has registered all but one
# chunk's worth: a backlog of 10,000 commands would keep the workers from dispatching anything until it is read.
CAMPAIGN_CHUNK = 1000
# Faults injected once this share of the expected messages is final: (share, code, HTTP status, times, words).
# Each burst stays under the circuit breaker's threshold (half of a sender's last 20 sends), so the messages are
# retried on WhatsApp rather than moved to SMS for the breaker's 30 s.
FAULTS = ((0.2, 130429, 429, 8, "a burst of 8 answers 130429 (throughput limit)"),
          (0.5, 131016, 503, 6, "6 answers 503 (131016, service unavailable) in a row"))


@dataclass
class Run:
    """One run: its id (in topic names and the folder var/demo/<id>), its inputs and what it has started."""

    duration: float
    source: Path
    production: PipelineConfig
    scenario: Scenario
    campaign: Campaign
    workers: int = 2
    stay: bool = False
    bootstrap: str = ""
    api_url: str = ""
    console_url: str = ""
    id: str = field(default_factory=lambda: f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    processes: Processes = field(default_factory=Processes)
    started: float = field(default_factory=time.monotonic)

    @property
    def directory(self) -> Path:
        return project_root() / "var" / "demo" / self.id

    @property
    def prefix(self) -> str:
        return f"demo-{self.id}-"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Play:
    """The scenario's inputs, the faults and the answers to replies, while the message events are followed."""

    def __init__(self, run: Run, config: PipelineConfig, simulator: WhatsAppSimulator, secrets_: DemoSecrets,
                 twilio: TwilioSimulator | None = None) -> None:
        self.run, self.config, self.simulator, self.secrets, self.twilio = run, config, simulator, secrets_, twilio
        self.topics = Topics(run.prefix)
        self.planned = run.scenario.expected(config)
        campaign = run.campaign
        self.campaign_ids = dict(zip((c.ref for c in campaign.recipients), campaign.message_ids(), strict=True))
        self.tracker = Tracker([*(p.message_id for p in self.planned), *self.campaign_ids.values()],
                               receipt_statuses(config))
        self.by_contact = contact_of(campaign)
        self.by_ref = {c.ref: c for c in campaign.recipients}
        self.senders = {s.id: s.address for c in config.channels if c.kind.value == "whatsapp" for s in c.senders}
        self.wrote: set[str] = set()  # refs whose reply the simulator has posted
        self.inbound: set[str] = set()  # refs whose inbound message the pipeline has recorded
        self.answered: set[str] = set()  # refs whose free-text answer is requested
        self.faults = list(FAULTS)
        self.fault_notes: list[str] = []
        self.template = TemplatePause(simulator)
        self.pace = Pace()
        self.erp_sent = False
        self.campaign_sent = 0  # recipients whose commands are produced
        self.last_event = time.monotonic()
        self.stalled = False
        self.feed = Feed(run.bootstrap)

    async def play(self) -> int:
        self._describe()
        await self.feed.start()
        try:
            played = time.monotonic()
            await self._register()
            erp = asyncio.create_task(self._erp_stream())
            try:
                done = await self._follow(played)
            finally:
                erp.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await erp
        finally:
            await self.feed.stop()
        return await Finish(self, played, done).report()

    def _describe(self) -> None:
        scenario, campaign = self.run.scenario, self.run.campaign
        if scenario.night:
            zone, city = scenario.night
            night = f"in {city} it is {scenario.at.astimezone(ZoneInfo(zone)):%H:%M}: quiet hours"
        else:
            night = f"nobody is inside quiet hours: {scenario.night_note}"
        shares = ", ".join(f"{count:,} {segment}" for segment, count in campaign.shares().items())
        print(f"Scenario: an ERP stream of {len(scenario.events)} business events and {len(scenario.requests)} "
              f"one-time passwords and offers for {len(scenario.customers)} customers ({night}): "
              f"{len(self.planned)} messages expected.\n"
              f"  Campaign `weekend_offer` to {len(campaign.recipients):,} recipients ({shares}); "
              f"{len(campaign.repliers)} of them reply and get a free-text answer inside their 24-hour window.",
              flush=True)

    async def _register(self) -> None:
        """Contacts and consent first, acknowledged, so the writer knows them before any request or trigger."""
        scenario = self.run.scenario
        await self.feed.send(self.topics.commands, json_records([*scenario.contact_commands(),
                                                                 *scenario.consent_commands()]))
        # The campaign's template as published and approved at Meta (its review comes back by webhook).
        await self.feed.send(TemplateTopics(self.run.prefix).commands,
                             json_records([publish_command(self.config.tenants[0].id)]))
        self.template.approve()

    async def _campaign(self) -> None:
        """The next chunks of recipients (contact, consent, then the offer: in order, as they share a key and
        so a partition) while the pipeline has registered all but one chunk's worth of what was sent."""
        recipients = self.run.campaign.recipients
        while self.campaign_sent < len(recipients) and self.tracker.requested >= self.campaign_sent - CAMPAIGN_CHUNK:
            chunk = replace(self.run.campaign, recipients=recipients[self.campaign_sent:
                                                                      self.campaign_sent + CAMPAIGN_CHUNK])
            await self.feed.send(self.topics.commands, json_records([*chunk.contact_commands(),
                                                                     *chunk.request_commands()]))
            self.campaign_sent += len(chunk.recipients)

    async def _erp_stream(self) -> None:
        """The shop's events and direct requests in slices, one a second, as a stream rather than one lump."""
        steps = self.run.scenario.steps
        size = max(1, -(-len(steps) // ERP_SLICES))
        for start in range(0, len(steps), size):
            part = replace(self.run.scenario, steps=steps[start:start + size])
            await self.feed.send(self.topics.commands, json_records(part.request_commands()))
            await self.feed.send(self.topics.business_events, part.business_records())
            await asyncio.sleep(1.0)  # the pace of the stream itself, not a wait for something to happen
        self.erp_sent = True

    def done(self, now: float) -> bool:
        repliers = self.run.campaign.repliers
        return self.erp_sent and self.tracker.done(now) and all(self._settled(ref) for ref in repliers)

    def _settled(self, ref: str) -> bool:
        """A reply is settled once answered, or when the offer ended without being read (nobody writes back)."""
        if ref in self.answered:
            return True
        view = self.tracker.views[self.campaign_ids[ref]]
        return view.is_final(self.tracker.receipts, time.time()) and not view.read

    async def _follow(self, played: float) -> bool:
        """Reads message and contact events until every message is final (True) or --duration is over (False)."""
        consumer = AIOKafkaConsumer(self.topics.message_events, self.topics.contact_events,
                                    bootstrap_servers=self.run.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        deadline, next_tick = played + self.run.duration, time.monotonic()
        try:
            while True:
                if time.monotonic() >= next_tick:  # once a second: walking every message costs more than a read
                    if self.done(time.time()):
                        break
                    self._tick(played)
                    next_tick = max(next_tick + 1.0, time.monotonic() + 0.5)  # no catching up after a slow round
                if time.monotonic() > deadline:
                    return False
                if self._stalled():
                    self.stalled = True
                    return False
                for partition, records in (await consumer.getmany(timeout_ms=200, max_records=5000)).items():
                    self._apply(partition.topic, [r.value for r in records if r.value is not None])
                await self._campaign()
                await self._replies()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        self._tick(played)
        return True

    def _stalled(self) -> bool:
        """Everything sent, yet nothing has happened to any message for STALL_SECONDS: waiting longer is pointless."""
        sent = self.erp_sent and self.campaign_sent == len(self.run.campaign.recipients)
        return sent and time.monotonic() - self.last_event > STALL_SECONDS

    def _apply(self, topic: str, values: list[bytes]) -> None:
        if values and topic == self.topics.message_events:
            self.last_event = time.monotonic()
        for value in values:
            event = decode(value)
            if not isinstance(event, DecodedEvent):
                continue
            if topic == self.topics.message_events:
                self.tracker.apply(event.event_type, event.payload)
            elif event.event_type == "InboundMessageReceived":
                customer = self.by_contact.get(str(event.payload["envelope"]["aggregate_id"]))
                if customer is not None:
                    self.inbound.add(customer.ref)

    async def _replies(self) -> None:
        """Repliers write back once they have read the offer; once the pipeline has their message, they get an
        answer in free text (allowed only inside the 24-hour window their message opened)."""
        for ref in self.run.campaign.repliers - self.wrote:
            view = self.tracker.views[self.campaign_ids[ref]]
            if view.read and view.sender in self.senders:
                customer = self.by_ref[ref]
                await self.simulator.simulate_inbound(customer.phone, self.run.campaign.reply_text(customer),
                                                      phone_number_id=self.senders[view.sender])
                self.wrote.add(ref)
        answers = [self.by_ref[ref] for ref in self.inbound - self.answered]
        if answers:
            for customer in answers:
                self.tracker.expect(self.run.campaign.reply_message_id(customer))
            await self.feed.send(self.topics.commands,
                                 json_records(self.run.campaign.reply_request(c) for c in answers))
            self.answered.update(c.ref for c in answers)

    def _tick(self, played: float) -> None:
        self.run.processes.check()
        now = time.monotonic()
        counts = self.tracker.counts(time.time())
        self.pace.add(now, counts.final)
        expected = len(self.tracker.expected)
        when = f"at {now - played:.0f} s ({counts.final:,} messages final)"
        while self.faults and counts.final >= self.faults[0][0] * expected:
            _, code, status, times, words = self.faults.pop(0)
            self.simulator.inject_error(code, times=times, http_status=status)
            self._fault(when, words)
        review = self.template.tick(now, counts.final, expected)
        if review is not None:
            self._fault(when, review)
        print(progress_line(now - played, counts, expected, self.pace), flush=True)

    def _fault(self, when: str, words: str) -> None:
        self.fault_notes.append(f"{when}: {words}")
        print(f"  fault: {words}", flush=True)
