"""Plain typed items a driver parses out of a provider webhook: receipts, inbound messages, template updates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors._privacy import PHONE, MaskedRepr
from connectors._results import ProviderError

__all__ = [
    "AccountErrorItem",
    "Conversation",
    "InboundItem",
    "InboundMedia",
    "NormalizedItem",
    "Pricing",
    "ReceiptItem",
    "ReceiptStatus",
    "TemplateUpdateItem",
    "TemplateUpdateKind",
    "UnhandledItem",
]


class ReceiptStatus(StrEnum):
    """Statuses a provider reports for an outbound message; ranked sent < delivered < read < played."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"  # a voice message was played
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Pricing:
    """Pricing as reported with a receipt; every field optional because it changed across API versions."""

    model: str | None = None  # CBP before July 2025, PMP since
    category: str | None = None
    type: str | None = None  # regular | free_customer_service | free_entry_point (webhooks v24.0+)
    billable: bool | None = None  # deprecated by Meta, kept when present


@dataclass(frozen=True, slots=True)
class Conversation:
    """The conversation a receipt belongs to (conversation-based pricing only)."""

    id: str
    origin: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, repr=False)
class ReceiptItem(MaskedRepr):
    """A status for one of our outbound messages; `message_id` is ours, echoed back by the provider."""

    channel: str
    account_id: str
    provider_message_id: str
    status: ReceiptStatus
    occurred_at: datetime
    message_id: str | None = None
    recipient_id: str | None = field(default=None, metadata=PHONE)
    errors: tuple[ProviderError, ...] = ()
    pricing: Pricing | None = None
    conversation: Conversation | None = None
    business_account_id: str | None = None
    # A watermark (Messenger's): every message sent to `recipient_id` at or before `occurred_at` reached `status`.
    watermark: bool = False

    @property
    def dedupe_key(self) -> tuple[str, str]:
        """(provider message id, status): the same receipt delivered twice has the same key."""
        return (self.provider_message_id, self.status.value)


@dataclass(frozen=True, slots=True)
class InboundMedia:
    """Media a user sent: an id to resolve with the provider, sometimes with a short-lived URL."""

    kind: str
    media_id: str
    mime_type: str | None = None
    sha256: str | None = None
    url: str | None = None
    caption: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True, repr=False)
class InboundItem(MaskedRepr):
    """A message a user sent us; `payload` holds a button or list-row id or a template button payload."""

    channel: str
    account_id: str
    provider_message_id: str
    sender: str = field(metadata=PHONE)
    occurred_at: datetime
    kind: str
    text: str | None = None
    payload: str | None = None
    title: str | None = None
    media: InboundMedia | None = None
    reply_to: str | None = None  # the provider message id the user replied to (or whose button they tapped)
    profile_name: str | None = field(default=None, repr=False)
    user_id: str | None = None  # business-scoped user id when the provider sends one
    errors: tuple[ProviderError, ...] = ()
    business_account_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def dedupe_key(self) -> str:
        """The provider message id."""
        return self.provider_message_id


class TemplateUpdateKind(StrEnum):
    """Which template webhook an update came from."""

    STATUS = "status"
    CATEGORY = "category"
    QUALITY = "quality"
    COMPONENTS = "components"


@dataclass(frozen=True, slots=True)
class TemplateUpdateItem:
    """A change to a template: approval status, category, quality score or components."""

    channel: str
    kind: TemplateUpdateKind
    template_id: str
    template_name: str | None = None
    language: str | None = None
    business_account_id: str | None = None
    occurred_at: datetime | None = None
    status: str | None = None  # APPROVED, REJECTED, PAUSED, ... for STATUS updates
    reason: str | None = None
    new_category: str | None = None
    previous_category: str | None = None
    new_quality: str | None = None
    previous_quality: str | None = None
    body: str | None = field(default=None, repr=False)  # COMPONENTS: the edited translation's text
    header: str | None = field(default=None, repr=False)
    footer: str | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def dedupe_key(self) -> tuple[str, str, str, str]:
        """(template id, kind, event, time): a redelivered update has the same key."""
        when = self.occurred_at.isoformat() if self.occurred_at else ""
        event = self.status or self.new_category or self.new_quality or self.body or ""
        return (self.template_id, self.kind.value, event, when)


@dataclass(frozen=True, slots=True)
class AccountErrorItem:
    """Errors the provider reported for the account or app as a whole, not for one message."""

    channel: str
    account_id: str | None
    errors: tuple[ProviderError, ...]
    business_account_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnhandledItem:
    """A well-formed notification the driver does not normalise (yet): kept, so nothing is silently lost."""

    channel: str
    source: str  # where it came from, e.g. the WhatsApp change field "account_update"
    reason: str
    business_account_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


NormalizedItem = ReceiptItem | InboundItem | TemplateUpdateItem | AccountErrorItem | UnhandledItem
