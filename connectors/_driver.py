"""The channel-driver plugin interface every channel implements, in the manner of httpx transports."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import ClassVar, Self

from connectors._items import NormalizedItem, ReceiptStatus
from connectors._messages import OutboundMessage
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import Transport

__all__ = ["Capabilities", "ChannelDriver", "classify_local"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel offers, so the pipeline can plan (and the contract suite knows what to check)."""

    receipts: frozenset[ReceiptStatus] = frozenset()
    inbound: bool = False
    template_updates: bool = False
    session_window: timedelta | None = None  # free-form only this long after the user's last message
    content: frozenset[str] = frozenset({"Text"})  # names of the content classes the driver can send
    handshake: bool = False  # answers a GET subscription handshake
    # The outcomes classify() can return; a channel without templates never says needs_template.
    outcomes: frozenset[Outcome] = frozenset(Outcome)
    signed_body: bool = True  # the webhook check covers the body (False: a shared secret header only, Telegram)
    receipt_message_id: bool = True  # receipts carry our message id (False: reconcile by provider_message_id)
    # Receipts come to a per-message callback URL that carries our reference (`sb_ref`) and the signature covers
    # that URL, so the normaliser may take the reference from the query (connectors/_callback_reference.py).
    callback_reference: bool = False
    # Some receipts name only the recipient (and a provider message id or a watermark time), not our message: the
    # normaliser finds the contact by address and the writer the message by provider id or send time (Messenger).
    receipts_by_recipient: bool = False


class ChannelDriver(abc.ABC):
    """One channel: send, classify errors, verify and parse webhooks. Talks to the world only via a Transport.

    Drivers are registered under the entry-point group `switchboard.channels` with the channel name as the
    entry-point name and the driver class as its value.
    """

    channel: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Builds the driver from plain settings (pipeline.toml); secrets come from the environment, never here."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Sends one message; returns a result for every failure (network, provider, validation), never raises."""

    @abc.abstractmethod
    def classify(self, error: ProviderError) -> Outcome:
        """What to do about an error, from a send response or a failed receipt; total over all codes."""

    def opted_out(self, error: ProviderError) -> str | None:
        """The consent an error of a failed receipt says the recipient withdrew on this channel: "marketing",
        "all", or None (most errors say nothing about consent)."""
        return None

    @abc.abstractmethod
    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raises SignatureMissing (answer 401) or SignatureInvalid (answer 403); run on the raw bytes first."""

    @abc.abstractmethod
    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """Every item of a verified body, in order; MalformedWebhook (answer 400) when it is not a notification."""

    def parse_received(self, raw_body: bytes, received_at: datetime | None) -> list[NormalizedItem]:
        """`parse_webhook` for a stored body, told when the receiver took it (None: not recorded). A channel whose
        webhooks carry no time of their own (Twilio's status callbacks) stamps its items with it, so that the log
        normalised again yields the same items; by default the body's own times are all there is."""
        return self.parse_webhook(raw_body)

    def check_webhook(self, raw_body: bytes) -> None:
        """MalformedWebhook (answer 400) when a verified body is not a notification: the receiver's check before
        storing it. By default a full parse; a driver may check the shape only, if it raises in the same cases."""
        self.parse_webhook(raw_body)

    def answer_handshake(self, query: Mapping[str, str]) -> str | None:
        """The body for a GET subscription handshake, None when the channel has none; HandshakeRejected (403)."""
        return None

    async def aclose(self) -> None:  # noqa: B027  # optional hook: drivers without resources need not override it
        """Releases the transport if the driver created it."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()


def classify_local(error: ProviderError) -> Outcome | None:
    """The outcome of an error from our side of the wire; None when the provider reported it."""
    if not error.is_local:
        return None
    if error.code in (LocalErrorCode.INVALID_MESSAGE, LocalErrorCode.TEMPLATE_NOT_SENDABLE):
        return Outcome.PERMANENT_FAILURE
    if error.code == LocalErrorCode.CREDENTIALS:
        return Outcome.STOP_ACCOUNT
    if error.code == LocalErrorCode.HTTP:
        return retry_by_http_status(error.http_status)
    return Outcome.RETRY_LATER  # timeout, network, unreadable success: the message itself is fine


def retry_by_http_status(status: int | None) -> Outcome:
    """For errors without a code we know: 429 and 5xx are transient, anything else is a bad request."""
    if status is not None and (status == 429 or status >= 500):
        return Outcome.RETRY_LATER
    return Outcome.PERMANENT_FAILURE
