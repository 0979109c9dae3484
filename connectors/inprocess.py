"""An in-process channel for tests and benchmarks: no network, answers at once, with failures chosen by settings."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import ClassVar, Self

from connectors._driver import Capabilities, ChannelDriver, classify_local
from connectors._errors import MalformedWebhook, SignatureMissing
from connectors._items import NormalizedItem
from connectors._messages import OutboundMessage
from connectors._results import Outcome, ProviderError, SendResult
from connectors._transport import Transport

__all__ = ["InProcessDriver"]

_SETTINGS = frozenset({"fail_addresses", "retry_addresses", "flaky_addresses"})


class InProcessDriver(ChannelDriver):
    """Accepts every message in memory; `fail_addresses` fail permanently, `retry_addresses` ask for a retry,
    and `flaky_addresses` ask for a retry on the first attempt of each message only.

    It stands in for a provider where the network would only add noise: the pipeline benchmark measures the
    engine, not HTTP. It has no webhooks, so it never produces receipts.
    """

    channel: ClassVar[str] = "inprocess"
    # It takes every kind of content, as the provider it stands in for might: templates stay templates.
    capabilities: ClassVar[Capabilities] = Capabilities(
        content=frozenset({"Text", "Media", "Template", "Buttons", "ListMenu"}),
        outcomes=frozenset({Outcome.ACCEPTED, Outcome.RETRY_LATER, Outcome.PERMANENT_FAILURE}))

    def __init__(self, fail_addresses: frozenset[str] = frozenset(), retry_addresses: frozenset[str] = frozenset(),
                 flaky_addresses: frozenset[str] = frozenset()) -> None:
        self.fail_addresses = fail_addresses
        self.retry_addresses = retry_addresses
        self.flaky_addresses = flaky_addresses
        self._tried: set[str] = set()
        self.sent: list[OutboundMessage] = []
        self._ids = itertools.count(1)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: `fail_addresses`, `retry_addresses` and `flaky_addresses`: comma-separated addresses."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown inprocess settings: {', '.join(sorted(unknown))}")
        return cls(*(_addresses(settings.get(name, "")) for name in ("fail_addresses", "retry_addresses",
                                                                     "flaky_addresses")))

    async def send(self, message: OutboundMessage) -> SendResult:
        """Answers at once: accepted, or the failure the settings choose for this recipient."""
        if message.recipient in self.fail_addresses:
            return self._failure(message, ProviderError("inprocess.undeliverable", "undeliverable recipient"),
                                 Outcome.PERMANENT_FAILURE)
        first_try = message.message_id not in self._tried
        self._tried.add(message.message_id)
        if message.recipient in self.retry_addresses or (first_try and message.recipient in self.flaky_addresses):
            return self._failure(message, ProviderError("inprocess.busy", "try again", is_transient=True),
                                 Outcome.RETRY_LATER)
        self.sent.append(message)
        return SendResult(Outcome.ACCEPTED, message.message_id, f"inproc-{next(self._ids)}", message.recipient)

    def classify(self, error: ProviderError) -> Outcome:
        """Local errors as every driver classifies them; ours by transience."""
        local = classify_local(error)
        if local is not None:
            return local
        return Outcome.RETRY_LATER if error.is_transient else Outcome.PERMANENT_FAILURE

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """There are no webhooks from an in-process channel: every one is refused as unsigned."""
        raise SignatureMissing("the inprocess channel sends no webhooks")

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """There are no webhooks from an in-process channel."""
        raise MalformedWebhook("the inprocess channel sends no webhooks")

    def _failure(self, message: OutboundMessage, error: ProviderError, outcome: Outcome) -> SendResult:
        return SendResult(outcome, message.message_id, recipient_id=message.recipient, error=error)


def _addresses(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
