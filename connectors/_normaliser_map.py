"""The normaliser's pure part: a raw webhook record's items as pipeline commands or dead letters, no Kafka."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from aggregates import ConsentCategory, Contact
from connectors._callback_reference import QUERY_RECORD_HEADER, with_callback_reference
from connectors._driver import ChannelDriver
from connectors._items import (
    AccountErrorItem,
    InboundItem,
    NormalizedItem,
    ReceiptItem,
    ReceiptStatus,
    TemplateUpdateItem,
    UnhandledItem,
)
from connectors._normaliser_index import AddressIndex, auto_external_ref, normal_address
from connectors._normaliser_templates import template_command
from connectors._privacy import mask_phone
from connectors._results import Outcome, ProviderError
from connectors.registry import get_driver
from streams.pipeline import is_stop, parse_reference, reference_trace
from switchboard import tracing
from switchboard.config import ChannelConfig, PipelineConfig

__all__ = [
    "RECEIPT_STATUSES",
    "ChannelDirectory",
    "DriverCache",
    "ItemMapper",
    "Mapped",
    "Output",
    "OutputKind",
    "Source",
    "Unparseable",
    "inbound_command",
    "receipt_command",
    "recipient_receipt_command",
    "stable_id",
    "stop_revocations",
]

_log = logging.getLogger("connectors.normaliser")

# Provider statuses as the writer's receipt statuses. `played` (a voice message was played) ranks above `read`
# and implies it (docs/reference: sent < delivered < read < played); the Message aggregate has no `played`, so
# it counts as a read at its own time: the aggregate keeps the earliest read, which a real read precedes.
RECEIPT_STATUSES: Final[Mapping[ReceiptStatus, str]] = {
    ReceiptStatus.SENT: "sent",
    ReceiptStatus.DELIVERED: "delivered",
    ReceiptStatus.READ: "read",
    ReceiptStatus.PLAYED: "read",
    ReceiptStatus.FAILED: "failed",
}
VERIFIED_HEADER: Final = "signature-verified"


class Unparseable(Exception):
    """A raw record whose items cannot be read at all; the whole record becomes one dead letter."""


class OutputKind(StrEnum):
    """Where an output goes: the pipeline's commands topic or the dead letters."""

    COMMAND = "command"
    TEMPLATE_COMMAND = "template_command"  # to the template writer (sb.commands.template, key: Template id)
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Source:
    """Where a raw record sits, so every dead letter points back at the exact bytes."""

    topic: str
    partition: int
    offset: int
    key: str | None = None  # the body's sha256, the receiver's record key

    def pointer(self) -> dict[str, Any]:
        """The record's position as a JSON object."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True)
class Output:
    """One record to write: a command keyed by contact id, or a dead letter keyed by the raw record's key."""

    kind: OutputKind
    key: str | None
    value: dict[str, Any]


@dataclass
class Mapped:
    """What one raw record came to."""

    outputs: list[Output] = field(default_factory=list)
    foreign_receipts: int = 0  # receipts for messages we did not send (no reference of ours): skipped
    new_contacts: int = 0  # inbound commands that register the sender as a new contact


def stable_id(*parts: str) -> str:
    """sha256 of the parts joined by '|': the same webhook item always yields the same command id."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def receipt_command(item: ReceiptItem, classify: Callable[[ProviderError], Outcome],
                    opted_out: Callable[[ProviderError], str | None] = lambda _: None) -> dict[str, Any] | None:
    """The `receipt` command for a receipt of one of our sends; None when the message is not ours. A failed
    receipt whose error withdraws consent (`opted_out`) says which (`consent_revoked`: marketing or all)."""
    reference = parse_reference(item.message_id) if item.message_id else None
    if reference is None:
        return None
    contact_id, message_id = reference
    at = _iso(item.occurred_at)
    command: dict[str, Any] = {
        "kind": "receipt", "v": 1,
        "command_id": stable_id(item.channel, item.provider_message_id, item.status.value, at),
        "contact_id": contact_id, "message_id": message_id, "status": RECEIPT_STATUSES[item.status],
        "provider_status": item.status.value, "provider_message_id": item.provider_message_id, "at": at,
    }
    # The message's own trace when the reference carries it (the webhook's trace is linked in the record headers).
    trace_id = reference_trace(item.message_id or "")
    if trace_id is not None:
        command["trace_id"] = trace_id
    if item.status is ReceiptStatus.FAILED:
        error = item.errors[0] if item.errors else None
        command["code"] = error.code if error else None
        command["detail"] = (error.details or error.message or None) if error else None
        command["outcome"] = classify(error).value if error else Outcome.PERMANENT_FAILURE.value
        revoked = opted_out(error) if error else None
        if revoked is not None:
            command["consent_revoked"] = revoked
    return command


def recipient_receipt_command(item: ReceiptItem, channel: ChannelConfig, index: AddressIndex
                              ) -> dict[str, Any] | None:
    """The `recipient_receipt` command for a receipt that names only its recipient (Messenger's delivered and
    read): keyed to the contact with that address; None when no contact of the channel's tenant has it."""
    kind = channel.kind.value
    contact_id = index.lookup(channel.tenant, kind, item.recipient_id) if item.recipient_id else None
    if contact_id is None or item.status is ReceiptStatus.FAILED:  # failures always name the message
        return None
    at = _iso(item.occurred_at)
    return {"kind": "recipient_receipt", "v": 1,
            "command_id": stable_id(item.channel, contact_id, item.provider_message_id, item.status.value, at),
            "contact_id": contact_id, "channel": kind, "status": RECEIPT_STATUSES[item.status],
            "provider_status": item.status.value, "provider_message_id": item.provider_message_id, "at": at,
            "watermark": item.watermark}


def stop_revocations(inbound: Mapping[str, Any], index: AddressIndex) -> list[dict[str, Any]]:
    """`consent` revocations of every category on the channel for the other contacts sharing a STOP's address."""
    others = [contact for contact in index.sharing(inbound["tenant"], inbound["channel"], inbound["address"])
              if contact != inbound["contact_id"]]
    return [{"kind": "consent", "v": 1,
             "command_id": stable_id(inbound["command_id"], "stop", contact, category.value),
             "tenant": inbound["tenant"], "contact_id": contact, "action": "revoke", "channel": inbound["channel"],
             "category": category.value, "source": "inbound:stop", "at": inbound["at"]}
            for contact in others for category in ConsentCategory]


def inbound_command(item: InboundItem, channel: ChannelConfig, index: AddressIndex) -> dict[str, Any]:
    """The `inbound` command; an unknown sender comes with the contact to register ('<channel>:<address>')."""
    kind, tenant = channel.kind.value, channel.tenant
    address = normal_address(kind, item.sender)
    command: dict[str, Any] = {
        "kind": "inbound", "v": 1, "command_id": stable_id(item.channel, item.provider_message_id),
        "tenant": tenant, "contact_id": index.lookup(tenant, kind, address), "channel": kind,
        "provider_message_id": item.provider_message_id, "address": address, "at": _iso(item.occurred_at),
        "text": item.text,
    }
    if command["contact_id"] is None:
        external_ref = auto_external_ref(kind, address)
        command["contact_id"] = str(Contact.create_id(tenant, external_ref))
        command["contact"] = {"external_ref": external_ref, "addresses": {kind: address}}
    return command


class ChannelDirectory:
    """The declared channels as the normaliser needs them: by driver, and by the sender account of an item."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def for_driver(self, driver: str) -> tuple[ChannelConfig, ...]:
        """Every channel served by this driver plugin, in declaration order."""
        return tuple(channel for channel in self.config.channels if channel.driver == driver)

    def by_account(self, driver: str, account_id: str) -> ChannelConfig | None:
        """The channel (and so the tenant) one of whose senders is this provider account, e.g. phone_number_id."""
        return next((channel for channel in self.for_driver(driver)
                     if any(sender.address == account_id for sender in channel.senders)), None)

    def of_account(self, driver: str, account_id: str | None) -> ChannelConfig:
        """The channel of this account, else the driver's first (whose classification serves for every one)."""
        return (self.by_account(driver, account_id) if account_id else None) or self.for_driver(driver)[0]


class DriverCache:
    """One driver per declared channel, from its `driver` and `settings`; rebuilt when the declaration changes."""

    def __init__(self, load: Callable[[str], type[ChannelDriver]] = get_driver) -> None:
        self._load = load
        self._drivers: dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ChannelDriver]] = {}
        self._retired: list[ChannelDriver] = []

    def driver(self, channel: ChannelConfig) -> ChannelDriver:
        """The channel's driver; DriverLoadError or ValueError when the plugin or its settings are wrong."""
        identity = (channel.driver, channel.settings)
        known = self._drivers.get(channel.id)
        if known is None or known[0] != identity:
            if known is not None:
                self._retired.append(known[1])  # closed at the end: a send may still hold its transport
            self._drivers[channel.id] = (identity, self._load(channel.driver).from_settings(dict(channel.settings)))
        return self._drivers[channel.id][1]

    async def aclose(self) -> None:
        """Closes every driver built."""
        for driver in [*self._retired, *(entry[1] for entry in self._drivers.values())]:
            await driver.aclose()
        self._drivers.clear()
        self._retired.clear()


class ItemMapper:
    """Parses raw records with the channel's driver and maps every item to a command or a dead letter."""

    def __init__(self, config: Callable[[], PipelineConfig], drivers: DriverCache, index: AddressIndex) -> None:
        self._config = config
        self._drivers = drivers
        self.index = index

    def parse(self, driver_name: str | None, headers: Mapping[str, str], raw: bytes | None) -> list[NormalizedItem]:
        """The record's items; Unparseable names why there are none to read."""
        if not driver_name:
            raise Unparseable("record has no channel header")
        if headers.get(VERIFIED_HEADER) != "true":
            raise Unparseable("record is not marked signature-verified by the receiver")
        if raw is None:
            raise Unparseable("record has no body")
        channels = ChannelDirectory(self._config()).for_driver(driver_name)
        if not channels:
            raise Unparseable(f"no [[channels]] entry uses driver {driver_name!r}")
        driver = self._drivers.driver(channels[0])
        try:
            items = driver.parse_received(raw, _received_at(headers))
        except Exception as error:  # MalformedWebhook, a broken plugin, a parser bug: the record is parked
            raise Unparseable(f"unparseable {driver_name} webhook: {type(error).__name__}: {error}") from None
        if not driver.capabilities.callback_reference:
            return items
        # The receiver verified the query with the body: it names the message the callback URL was made for.
        return with_callback_reference(items, headers.get(QUERY_RECORD_HEADER, ""))

    def needs_addresses(self, driver_name: str, items: list[NormalizedItem]) -> bool:
        """Whether mapping the items looks addresses up: an inbound sender, or a receipt naming only its recipient
        on a channel whose receipts do that (the index must then hold every contact registered so far)."""
        if any(isinstance(item, InboundItem) for item in items):
            return True
        if not any(isinstance(item, ReceiptItem) and item.message_id is None and item.recipient_id for item in items):
            return False
        channels = ChannelDirectory(self._config()).for_driver(driver_name)
        return bool(channels) and self._drivers.driver(channels[0]).capabilities.receipts_by_recipient

    def map(self, source: Source, driver_name: str, items: list[NormalizedItem]) -> Mapped:
        """Every item in order: commands for receipts of ours and inbound messages, dead letters for the rest."""
        mapped = Mapped()
        directory = ChannelDirectory(self._config())
        for position, item in enumerate(items):
            try:
                self._map_one(mapped, directory, source, driver_name, position, item)
            except Exception as error:  # one bad item must not hold up the others, nor be lost
                _log.exception("normalising item %d of %s failed", position, source.pointer())
                mapped.outputs.append(dead_letter(source, driver_name, f"mapping failed: {type(error).__name__}",
                                                  position))
        return mapped

    def _map_one(self, mapped: Mapped, directory: ChannelDirectory, source: Source, driver_name: str,
                 position: int, item: NormalizedItem) -> None:
        if isinstance(item, ReceiptItem):
            self._receipt(mapped, directory, source, driver_name, item)
        elif isinstance(item, InboundItem):
            self._inbound(mapped, directory, source, driver_name, position, item)
        elif isinstance(item, AccountErrorItem):
            self._account_errors(mapped, directory, source, driver_name, position, item)
        elif isinstance(item, TemplateUpdateItem):
            command = template_command(item, directory.for_driver(driver_name))
            mapped.outputs.append(Output(OutputKind.TEMPLATE_COMMAND, command["aggregate_id"], command)
                                  if isinstance(command, dict) else
                                  dead_letter(source, driver_name, command, position, _template_details(item)))
        else:
            reason, details = _unapplied(item)
            mapped.outputs.append(dead_letter(source, driver_name, reason, position, details))

    def _receipt(self, mapped: Mapped, directory: ChannelDirectory, source: Source, driver_name: str,
                 item: ReceiptItem) -> None:
        channel = directory.of_account(driver_name, item.account_id)
        driver = self._drivers.driver(channel)
        command = receipt_command(item, driver.classify, driver.opted_out)
        if command is None and driver.capabilities.receipts_by_recipient:
            command = recipient_receipt_command(item, channel, self.index)
        if command is None:
            mapped.foreign_receipts += 1
            # No provider message id in the log line: WhatsApp's wamid embeds the recipient's number.
            _log.debug("%s receipt %s at %s carries no reference of ours: skipped", driver_name, item.status.value,
                       source.pointer())
            return
        if _log.isEnabledFor(logging.DEBUG):  # three receipts per message: at INFO this line was a fifth of our CPU
            with tracing.use(tracing.continuing(command.get("trace_id"))):
                _log.debug("%s receipt %s for message %s", driver_name, command["status"],
                           command.get("message_id") or f"of contact {command['contact_id']}")
        mapped.outputs.append(Output(OutputKind.COMMAND, command["contact_id"], command))

    def _account_errors(self, mapped: Mapped, directory: ChannelDirectory, source: Source, driver_name: str,
                        position: int, item: AccountErrorItem) -> None:
        """Errors of the account as a whole: no message to apply them to, so parked for an operator, each code with
        what the driver makes of it (a `stop_account` means no send from that account works until a person acts)."""
        channel = directory.of_account(driver_name, item.account_id)
        outcomes = [self._drivers.driver(channel).classify(error).value for error in item.errors]
        codes = ", ".join(f"{error.code} ({outcome})" for error, outcome in zip(item.errors, outcomes, strict=True))
        _log.warning("%s reported errors for account %s, not for a message: %s (parked in the dead letters)",
                     driver_name, item.account_id, codes)
        mapped.outputs.append(dead_letter(source, driver_name, f"account errors reported by the provider: {codes}",
                                          position, {"account_id": item.account_id, "channel_id": channel.id,
                                                     "codes": [error.code for error in item.errors],
                                                     "messages": [error.message for error in item.errors],
                                                     "outcomes": outcomes}))

    def _inbound(self, mapped: Mapped, directory: ChannelDirectory, source: Source, driver_name: str,
                 position: int, item: InboundItem) -> None:
        channel = directory.by_account(driver_name, item.account_id)
        if channel is None:
            reason = f"no [[channels]] sender of driver {driver_name!r} has address {item.account_id!r}"
            mapped.outputs.append(dead_letter(source, driver_name, reason, position, {"account_id": item.account_id}))
            return
        command = inbound_command(item, channel, self.index)
        if "contact" in command:
            mapped.new_contacts += 1
            _log.info("inbound from unknown %s sender %s: registering contact %s for tenant %s", command["channel"],
                      mask_phone(command["address"]), command["contact_id"], command["tenant"])
        mapped.outputs.append(Output(OutputKind.COMMAND, command["contact_id"], command))
        if is_stop(item.text):
            # The writer revokes the sender's own contact's consents; every other contact of the tenant with this
            # address opted out too (it is the address that said STOP), each through its own writer.
            mapped.outputs.extend(Output(OutputKind.COMMAND, revocation["contact_id"], revocation)
                                  for revocation in stop_revocations(command, self.index))


def dead_letter(source: Source, driver_name: str | None, reason: str, position: int | None = None,
                details: Mapping[str, Any] | None = None) -> Output:
    """A dead letter pointing at the raw record (and the item in it); the raw bytes stay on their topic."""
    value: dict[str, Any] = {"stage": "normaliser", "reason": reason, "channel": driver_name,
                             "source": source.pointer(), "content_sha256": source.key, "item": position}
    if details:
        value["details"] = dict(details)
    return Output(OutputKind.DEAD_LETTER, source.key, value)


def _received_at(headers: Mapping[str, str]) -> datetime | None:
    """When the receiver took the webhook (its `received_at` header, epoch ms); None for records without it."""
    value = headers.get("received_at", "")
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value.isdigit() else None


def _template_details(item: TemplateUpdateItem) -> dict[str, Any]:
    """What identifies a template update that cannot become a command (its text stays on the raw topic)."""
    return {"update": item.kind.value, "template_id": item.template_id, "template_name": item.template_name,
            "language": item.language, "status": item.status, "reason": item.reason,
            "new_category": item.new_category, "previous_category": item.previous_category,
            "new_quality": item.new_quality, "business_account_id": item.business_account_id}


def _unapplied(item: NormalizedItem) -> tuple[str, dict[str, Any]]:
    """Why an item is parked, and what identifies it (never a phone number or a message text)."""
    if isinstance(item, UnhandledItem):
        return f"unhandled {item.source}: {item.reason}", {"business_account_id": item.business_account_id}
    return f"unknown item type {type(item).__name__}", {}
