"""What a send attempt comes to: the outcome classes, the provider's error, and the send result."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from connectors._privacy import PHONE, MaskedRepr

__all__ = ["LocalErrorCode", "Outcome", "ProviderError", "SendResult"]


class Outcome(StrEnum):
    """What the pipeline should do next; every provider error maps to exactly one of these."""

    ACCEPTED = "accepted"  # the provider took the message; receipts follow by webhook
    RETRY_LATER = "retry_later"  # transient or throttled: retry with backoff, the message is fine
    RETRY_RECIPIENT_LATER = "retry_recipient_later"  # this recipient only (pair limit): others continue
    NEEDS_TEMPLATE = "needs_template"  # free-form outside the session window: send a template instead
    PERMANENT_FAILURE = "permanent_failure"  # this message will never go out as it is: fail or fall back
    STOP_ACCOUNT = "stop_account"  # credentials, policy or billing: stop sending from this account, alert


class LocalErrorCode(StrEnum):
    """Codes for failures that happen on our side of the wire, shared by every driver."""

    TIMEOUT = "local.timeout"  # no answer in time; the provider may still have taken the message
    NETWORK = "local.network"  # connection failed or broke
    INVALID_MESSAGE = "local.invalid_message"  # the driver refused to build the request
    HTTP = "local.http"  # an HTTP error without the provider's error body (a proxy, a load balancer)
    BAD_RESPONSE = "local.bad_response"  # a 2xx whose body the driver could not read
    CREDENTIALS = "local.credentials"  # a credential is not configured: nothing can be sent from this account
    TEMPLATE_NOT_SENDABLE = "local.template_not_sendable"  # the provider paused, disabled or rejected the template


@dataclass(frozen=True, slots=True)
class ProviderError:
    """One error as the provider (or our side of the wire) reported it; `code` is always a string."""

    code: str
    message: str = ""
    details: str | None = None
    http_status: int | None = None
    is_transient: bool | None = None
    trace_id: str | None = None

    @property
    def is_local(self) -> bool:
        """Whether the error arose on our side (timeout, network, validation) rather than at the provider."""
        return self.code.startswith("local.")


@dataclass(frozen=True, slots=True, repr=False)
class SendResult(MaskedRepr):
    """The result of one send call; send() returns one for every failure instead of raising."""

    outcome: Outcome
    message_id: str
    provider_message_id: str | None = None
    recipient_id: str | None = field(default=None, metadata=PHONE)
    provider_status: str | None = None
    error: ProviderError | None = None
    retry_after: float | None = None
    # True when the request may have reached the provider although we saw no success (timeout, 5xx):
    # a retry can then duplicate the message, which is why our id rides along for reconciliation.
    maybe_sent: bool = False
    # True when the provider says the recipient opted out (Twilio 21610 after STOP, a Telegram user who blocked
    # the bot): the pipeline should revoke the recipient's consent, not only fail this message.
    consent_revoked: bool = False
    # True when the provider said "slow down" (a rate limit: HTTP 429, WhatsApp's 130429): the sender pauses for
    # retry_after and the message is retried, but it says nothing about the provider failing, so no circuit opens.
    throttled: bool = False

    @property
    def accepted(self) -> bool:
        """Whether the provider took the message."""
        return self.outcome is Outcome.ACCEPTED
