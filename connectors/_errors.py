"""Exceptions of the connectors; webhook rejections carry the HTTP status a receiver should answer with."""

from __future__ import annotations

from switchboard.errors import SwitchboardError

__all__ = [
    "DriverLoadError",
    "HandshakeRejected",
    "InvalidMessage",
    "MalformedWebhook",
    "SignatureInvalid",
    "SignatureMissing",
    "TransportError",
    "TransportTimeout",
    "WebhookRejected",
]


class WebhookRejected(Exception):
    """A webhook request that must not be accepted; `http_status` is the answer to give."""

    http_status = 400


class SignatureMissing(WebhookRejected):
    """The request carries no signature header at all."""

    http_status = 401


class SignatureInvalid(WebhookRejected):
    """The signature header is malformed or does not match the raw body."""

    http_status = 403


class MalformedWebhook(WebhookRejected):
    """The body is not a notification this channel sends (not JSON, wrong object, no entries)."""

    http_status = 400


class HandshakeRejected(WebhookRejected):
    """A subscription handshake with the wrong mode or verify token."""

    http_status = 403


class InvalidMessage(ValueError):
    """The driver cannot express this message on its channel (a limit, a missing part, a mix of styles)."""


class TransportError(Exception):
    """The request did not complete; `maybe_sent` says whether the provider may have received it anyway."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class TransportTimeout(TransportError):
    """No complete answer within the timeout; the provider may have received the request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_sent=True)


class DriverLoadError(SwitchboardError):
    """A channel driver plugin could not be loaded, or two plugins claim the same channel."""
