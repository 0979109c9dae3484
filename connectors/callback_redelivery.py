"""Status callbacks given up, sent again: their dead letters read back and delivered in order to today's URL.

A callback is dead-lettered when its tenant's endpoint refused it or stayed down through every retry; the message's
later events are dead-lettered with it, never sent out of order (connectors/callbacks.py). Once the endpoint is
back, `switchboard redeliver-callbacks` reads those letters from `sb.deadletters` (from a time, or for one
message), groups them by message, and delivers each message's events in sequence order to the tenant's current
URL, signed with its current secret, through the same dispatcher as the feeder: what fails again is dead-lettered
again, with a new time. Receivers dedupe by event id (the contract), so a second run over the same letters is
harmless.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregates import CallbackKind
from connectors._feeder_registry import CallbackRegistry
from connectors._feeder_secrets import CallbackSecrets
from connectors._transport import AiohttpTransport, Transport
from connectors.callback_deadletters import DEAD_LETTER_TOPIC, sink_to_use
from connectors.callbacks import CallbackDispatcher, CallbackEvent, CallbackTarget, DeadLetterSink
from schemas import EVENT_TOPICS, CodecError, DecodedEvent, decode
from streams.policies.backoff import RetryPolicy
from switchboard.log_reads import LogRecord, OnRead, read_topics

__all__ = ["RedeliveryConfig", "RedeliveryReport", "letters_by_message", "redeliver"]

_log = logging.getLogger(__name__)
Deliveries = dict[str, list[CallbackEvent]]  # message id -> its given-up events, in sequence order


@dataclass(frozen=True)
class RedeliveryConfig:
    """Which letters to send again (since a time and/or of one message or tenant), and how hard to try."""

    bootstrap: str
    topic_prefix: str = ""
    since: datetime | None = None
    message_id: str | None = None
    tenant_id: str | None = None
    secrets_dir: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    http_timeout: float = 10.0
    max_concurrency: int = 16
    dry_run: bool = False  # read and report what would be sent; send nothing


@dataclass
class RedeliveryReport:
    """What a run found and what became of it."""

    letters: int = 0  # status-callback dead letters read (within the filter)
    messages: int = 0
    events: int = 0  # distinct events to send again
    delivered: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)  # cause -> events given up again
    not_sent: Counter[str] = field(default_factory=Counter)  # why a tenant's events were not sent -> events

    @property
    def complete(self) -> bool:
        """Every event found was delivered."""
        return self.delivered == self.events

    def summary(self, dry_run: bool) -> str:
        found = f"{self.events} event(s) of {self.messages} message(s) from {self.letters} dead letter(s)"
        if dry_run:
            return f"would redeliver {found}" + _causes("; not sendable", self.not_sent)
        return (f"redelivered {self.delivered} of {found}" + _causes("; dead-lettered again", self.dead_lettered) +
                _causes("; not sent", self.not_sent))


def letters_by_message(records: Iterable[LogRecord], message_id: str | None = None,
                       tenant_id: str | None = None) -> tuple[int, dict[str, Deliveries]]:
    """The status-callback letters among dead-letter records, as tenant -> message -> events (each event once, in
    sequence order), with the count of letters that matched."""
    found: dict[str, dict[str, dict[int, CallbackEvent]]] = {}
    letters = 0
    for record in records:
        event = _callback_event(record)
        if event is None or (message_id and event.message_id != message_id) or \
                (tenant_id and event.tenant_id != tenant_id):
            continue
        letters += 1
        found.setdefault(event.tenant_id, {}).setdefault(event.message_id, {})[event.sequence] = event
    return letters, {tenant: {message: [events[n] for n in sorted(events)] for message, events in messages.items()}
                     for tenant, messages in found.items()}


async def redeliver(config: RedeliveryConfig, *, transport: Transport | None = None,
                    secrets: CallbackSecrets | None = None, dead_letters: DeadLetterSink | None = None,
                    progress: OnRead | None = None) -> RedeliveryReport:
    """Reads the letters and the tenants' URLs, then (unless a dry run) delivers each message's events in order."""
    letter_topic = config.topic_prefix + DEAD_LETTER_TOPIC
    tenant_topic = config.topic_prefix + EVENT_TOPICS["tenant"].name
    letters = (await read_topics(config.bootstrap, [letter_topic], config.since, progress))[letter_topic]
    report = RedeliveryReport()
    report.letters, by_tenant = letters_by_message(letters, config.message_id, config.tenant_id)
    report.messages = sum(len(messages) for messages in by_tenant.values())
    report.events = sum(len(events) for messages in by_tenant.values() for events in messages.values())
    registry = CallbackRegistry.fold(_tenant_events((await read_topics(config.bootstrap, [tenant_topic]))
                                                    [tenant_topic]))
    targets = _targets(by_tenant, registry, secrets or CallbackSecrets(config.secrets_dir), report)
    if config.dry_run or not targets:
        return report
    await _deliver(config, by_tenant, targets, transport, dead_letters, report)
    return report


def _targets(by_tenant: Mapping[str, Deliveries], registry: CallbackRegistry, secrets: CallbackSecrets,
             report: RedeliveryReport) -> dict[str, CallbackTarget]:
    """Each tenant's target as of now; a tenant without one is counted as not sent, with why (its letters stay)."""
    targets = {}
    for tenant, messages in by_tenant.items():
        target = _target(tenant, registry, secrets)
        if isinstance(target, str):
            report.not_sent[target] += sum(len(events) for events in messages.values())
        else:
            targets[tenant] = target
    return targets


def _target(tenant: str, registry: CallbackRegistry, secrets: CallbackSecrets) -> CallbackTarget | str:
    """The tenant's status callback target, or why there is none."""
    url = registry.url(tenant, CallbackKind.MESSAGE_STATUS)
    if url is None:
        return "the tenant has no status callback URL"
    secret = secrets.lookup(tenant)
    if secret is None:
        return "the tenant has no signing secret"
    try:
        return CallbackTarget(url, secret)
    except ValueError:  # the feeder dead-letters these as invalid_callback_url: not one we send to
        return "the tenant's status callback URL is not http(s)://host/..."


async def _deliver(config: RedeliveryConfig, by_tenant: Mapping[str, Deliveries],
                   targets: Mapping[str, CallbackTarget], transport: Transport | None,
                   dead_letters: DeadLetterSink | None, report: RedeliveryReport) -> None:
    own_transport = transport is None
    sender: Transport = transport or AiohttpTransport(timeout=config.http_timeout)
    sink, kafka = sink_to_use(dead_letters, config.bootstrap, config.topic_prefix + DEAD_LETTER_TOPIC)
    if kafka is not None:
        await kafka.start()
    try:
        dispatcher = CallbackDispatcher(sender, config.retry, sink, max_concurrency=config.max_concurrency)
        outcomes = await dispatcher.deliver_all((targets[tenant], events) for tenant, messages in by_tenant.items()
                                                if tenant in targets for events in messages.values())
        for outcome in outcomes:
            report.delivered += len(outcome.delivered)
            report.dead_lettered.update(str(letter.cause) for letter in outcome.dead_letters)
    finally:
        if kafka is not None:
            await kafka.stop()
        if own_transport:
            await sender.aclose()


def _callback_event(record: LogRecord) -> CallbackEvent | None:
    """The event of a status-callback dead letter; None for any other letter (or one that cannot be read)."""
    try:
        letter = json.loads(record.value or b"")
    except ValueError:
        return None  # not a status callback's: those are JSON (`switchboard deadletters` shows the rest)
    if not isinstance(letter, dict) or letter.get("kind") != "status-callback":
        return None
    try:
        event: Mapping[str, Any] = letter["event"]
        return CallbackEvent(str(event["message_id"]), str(event["tenant_id"]), str(event["event_type"]),
                             int(event["sequence"]), datetime.fromisoformat(str(event["occurred_at"])),
                             dict(event.get("payload") or {}))
    except (ValueError, KeyError, TypeError) as error:
        _log.warning("dead letter at %s is a status callback that cannot be read (%s): not redelivered",
                     record.position, type(error).__name__)
        return None


def _tenant_events(records: Iterable[LogRecord]) -> Iterable[DecodedEvent]:
    """The tenant topic's events this build can read (the callback URLs among them)."""
    for record in records:
        try:
            decoded = decode(record.value) if record.value is not None else None
        except CodecError:
            continue  # not one of our events: the feeder logs these as it follows the topic
        if isinstance(decoded, DecodedEvent):
            yield decoded


def _causes(label: str, counts: Counter[str]) -> str:
    return f"{label}: " + ", ".join(f"{count} {cause}" for cause, count in sorted(counts.items())) if counts else ""

