"""Vocabularies and value checks shared by the aggregates; enum values are the symbols of the same-named Avro enums."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from aggregates._base import DomainError

__all__ = [
    "ApprovalStatus",
    "CallbackKind",
    "Channel",
    "ConsentCategory",
    "DeferralReason",
    "FailureClass",
    "MessageCategory",
    "ParameterFormat",
    "RateLimitTier",
    "SuppressionReason",
    "TemplateCategory",
    "TemplateQuality",
    "normalize_locale",
    "require_aware",
]


class Channel(StrEnum):
    """A messaging channel; UNKNOWN is what older code reads for a channel added later."""

    UNKNOWN = "unknown"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    TELEGRAM = "telegram"
    LINE = "line"
    MESSENGER = "messenger"
    EMAIL = "email"


class MessageCategory(StrEnum):
    """What a message is for; decides which consent it needs and how the provider bills it."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"
    SERVICE = "service"


class ConsentCategory(StrEnum):
    """The categories a contact opts in to or out of, per channel."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"


class TemplateCategory(StrEnum):
    """A template's category as the provider bills it."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"


class FailureClass(StrEnum):
    """Our reading of a provider failure, which decides between retry, fallback and giving up."""

    UNKNOWN = "unknown"
    RETRYABLE = "retryable"
    THROTTLED = "throttled"
    PERMANENT = "permanent"
    POLICY = "policy"
    WINDOW_CLOSED = "window_closed"
    ACCOUNT = "account"


class SuppressionReason(StrEnum):
    """Why a message will never be sent."""

    OTHER = "other"
    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    FREQUENCY_CAP = "frequency_cap"
    DUPLICATE = "duplicate"
    INVALID_RECIPIENT = "invalid_recipient"
    TEMPLATE_UNAVAILABLE = "template_unavailable"
    BLOCKED = "blocked"


class DeferralReason(StrEnum):
    """Why a message waits."""

    OTHER = "other"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    RATE_LIMITED = "rate_limited"
    WINDOW_CLOSED = "window_closed"
    SCHEDULED = "scheduled"


class ParameterFormat(StrEnum):
    """How a template names its parameters: {{1}} or {{first_name}}."""

    POSITIONAL = "positional"
    NAMED = "named"


class TemplateQuality(StrEnum):
    """A template's quality rating at the provider, in WhatsApp's spelling (from recipients' feedback)."""

    UNKNOWN = "UNKNOWN"
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"


class ApprovalStatus(StrEnum):
    """A template translation's review status at the provider, in WhatsApp's spelling."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    FLAGGED = "FLAGGED"
    REINSTATED = "REINSTATED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    ARCHIVED = "ARCHIVED"
    UNARCHIVED = "UNARCHIVED"


class RateLimitTier(StrEnum):
    """A tenant's rate-limit tier."""

    SANDBOX = "sandbox"
    STANDARD = "standard"
    HIGH = "high"
    UNLIMITED = "unlimited"


class CallbackKind(StrEnum):
    """Which kind of callback a tenant URL receives."""

    UNKNOWN = "unknown"
    MESSAGE_STATUS = "message_status"
    INBOUND_MESSAGE = "inbound_message"
    TEMPLATE_STATUS = "template_status"


_LOCALE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


def normalize_locale(value: str) -> str:
    """A locale in the provider's form (en, en_US, pt_BR); accepts pt-BR too, since webhooks use both."""
    locale = value.strip().replace("-", "_")
    if "_" in locale:
        language, region = locale.split("_", 1)
        locale = f"{language.lower()}_{region.upper()}"
    if not _LOCALE.fullmatch(locale):
        raise DomainError(f"{value!r} is not a locale like en, en_US or pt_BR")
    return locale


def require_aware(value: datetime, what: str) -> datetime:
    """The datetime, truncated to milliseconds (what events keep); refuses naive ones."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError(f"{what} must be timezone-aware, got {value!r}")
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
