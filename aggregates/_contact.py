"""The Contact aggregate: addresses, consent per channel and category, preferences and the service window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregates._base import DomainError, SwitchboardAggregate, derived_id
from aggregates._values import Channel, ConsentCategory, MessageCategory, normalize_locale, require_aware

__all__ = ["CUSTOMER_SERVICE_WINDOW", "Consent", "Contact", "FrequencyCap", "Preferences", "QuietHours"]

# WhatsApp: a user's message opens (and each later one restarts) a 24-hour window for free-form replies.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
_MINUTES_PER_DAY = 24 * 60
_RECENT_INBOUND = 64  # inbound ids remembered to drop webhook redeliveries; they arrive within minutes


@dataclass(frozen=True)
class QuietHours:
    """A daily span, in the contact's own time zone, when nothing but urgent messages should arrive."""

    start_minute: int
    end_minute: int
    time_zone: str

    def validate(self) -> None:
        """Raises DomainError unless minutes are within a day, distinct, and the zone is a known IANA name."""
        if not (0 <= self.start_minute < _MINUTES_PER_DAY and 0 <= self.end_minute < _MINUTES_PER_DAY):
            raise DomainError("quiet hours must start and end within the day (0..1439 minutes)")
        if self.start_minute == self.end_minute:
            raise DomainError("quiet hours must not start and end at the same minute")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DomainError(f"{self.time_zone!r} is not an IANA time zone") from None

    def contains(self, at: datetime) -> bool:
        """Whether `at` falls in quiet hours; spans past midnight (22:00-07:00) wrap."""
        local = at.astimezone(ZoneInfo(self.time_zone))
        minute = local.hour * 60 + local.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def ends_after(self, at: datetime) -> datetime:
        """The first instant at or after `at` that is not quiet, in UTC (what a deferral waits for)."""
        if not self.contains(at):
            return at
        zone = ZoneInfo(self.time_zone)
        local = at.astimezone(zone)
        end = time(self.end_minute // 60, self.end_minute % 60)
        candidate = datetime.combine(local.date(), end, tzinfo=zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=zone)
        return candidate.astimezone(UTC)


@dataclass(frozen=True)
class FrequencyCap:
    """At most `max_messages` of a category per `period_seconds`."""

    category: MessageCategory
    max_messages: int
    period_seconds: int


@dataclass(frozen=True)
class Preferences:
    """Everything a contact can choose; change it with dataclasses.replace and Contact.set_preferences."""

    language: str | None = None
    preferred_channel: Channel | None = None
    quiet_hours: QuietHours | None = None
    frequency_caps: tuple[FrequencyCap, ...] = ()


@dataclass(frozen=True)
class Consent:
    """The latest consent decision for one channel and category."""

    granted: bool
    source: str
    decided_at: datetime


class Contact(SwitchboardAggregate):
    """A person a tenant messages: where to reach them, what they agreed to, and when they last wrote."""

    AGGREGATE_TYPE = "Contact"

    class Registered(SwitchboardAggregate.Created):
        """The contact became known."""

        tenant_id: str
        external_ref: str
        addresses: Mapping[Channel, str]

    class ConsentGranted(SwitchboardAggregate.Event):
        """Opt-in to a category on a channel."""

        channel: Channel
        category: ConsentCategory
        source: str
        evidence: str | None

        def apply(self, aggregate: Contact) -> None:
            """Record the decision."""
            aggregate.consents = {
                **aggregate.consents,
                (self.channel, self.category): Consent(True, self.source, self.timestamp),
            }

    class ConsentRevoked(SwitchboardAggregate.Event):
        """Opt-out of a category on a channel."""

        channel: Channel
        category: ConsentCategory
        source: str

        def apply(self, aggregate: Contact) -> None:
            """Record the decision."""
            aggregate.consents = {
                **aggregate.consents,
                (self.channel, self.category): Consent(False, self.source, self.timestamp),
            }

    class PreferencesChanged(SwitchboardAggregate.Event):
        """The complete preferences after a change."""

        language: str | None
        preferred_channel: Channel | None
        quiet_hours: QuietHours | None
        frequency_caps: tuple[FrequencyCap, ...]

        def apply(self, aggregate: Contact) -> None:
            """Replace the preferences."""
            aggregate.preferences = Preferences(
                self.language, self.preferred_channel, self.quiet_hours, self.frequency_caps
            )

    class InboundMessageReceived(SwitchboardAggregate.Event):
        """The contact wrote to us."""

        channel: Channel
        provider_message_id: str
        address: str
        provider_at: datetime
        text: str | None

        def apply(self, aggregate: Contact) -> None:
            """Move the channel's last-inbound time forward (never back) and remember the id."""
            previous = aggregate.last_inbound_at.get(self.channel)
            latest = self.provider_at if previous is None else max(previous, self.provider_at)
            aggregate.last_inbound_at = {**aggregate.last_inbound_at, self.channel: latest}
            aggregate.recent_inbound_ids = (*aggregate.recent_inbound_ids, self.provider_message_id)[
                -_RECENT_INBOUND:
            ]

    def __init__(self, tenant_id: str, external_ref: str, addresses: Mapping[Channel, str]) -> None:
        self.tenant_id = tenant_id
        self.external_ref = external_ref
        # State below is replaced, never mutated in place: snapshots share these objects with live aggregates.
        self.addresses: Mapping[Channel, str] = dict(addresses)
        self.consents: Mapping[tuple[Channel, ConsentCategory], Consent] = {}
        self.preferences = Preferences()
        self.last_inbound_at: Mapping[Channel, datetime] = {}
        self.recent_inbound_ids: tuple[str, ...] = ()

    @staticmethod
    def create_id(tenant_id: str, external_ref: str) -> UUID:
        """One contact per tenant and external reference, however often it is registered."""
        return derived_id("contact", tenant_id, external_ref)

    @classmethod
    def register(cls, *, tenant_id: str, external_ref: str, addresses: Mapping[Channel, str]) -> Contact:
        """A new contact with at least one address."""
        if not external_ref:
            raise DomainError("external_ref must not be empty")
        if not addresses or not all(addresses.values()):
            raise DomainError("a contact needs at least one non-empty address")
        return cls._create(cls.Registered, tenant_id=tenant_id, external_ref=external_ref, addresses=dict(addresses))

    def has_consent(self, channel: Channel, category: ConsentCategory) -> bool:
        """Whether the latest decision for this channel and category is an opt-in; no decision means no."""
        consent = self.consents.get((channel, category))
        return consent is not None and consent.granted

    def grant_consent(
        self, channel: Channel, category: ConsentCategory, source: str, evidence: str | None = None
    ) -> bool:
        """Records an opt-in; False (no event) if consent is already granted."""
        if self.has_consent(channel, category):
            return False
        self.trigger_event(self.ConsentGranted, channel=channel, category=category, source=source, evidence=evidence)
        return True

    def revoke_consent(self, channel: Channel, category: ConsentCategory, source: str) -> bool:
        """Records an opt-out; False (no event) if there is no consent to revoke."""
        if not self.has_consent(channel, category):
            return False
        self.trigger_event(self.ConsentRevoked, channel=channel, category=category, source=source)
        return True

    def set_preferences(self, preferences: Preferences) -> bool:
        """Replaces the preferences after checking them; False (no event) if nothing changes."""
        checked = _checked(preferences)
        if checked == self.preferences:
            return False
        self.trigger_event(
            self.PreferencesChanged,
            language=checked.language,
            preferred_channel=checked.preferred_channel,
            quiet_hours=checked.quiet_hours,
            frequency_caps=checked.frequency_caps,
        )
        return True

    def record_inbound(
        self, channel: Channel, provider_message_id: str, address: str, provider_at: datetime, text: str | None = None
    ) -> bool:
        """Records a message from the contact; False (no event) for a recently seen provider message id."""
        if provider_message_id in self.recent_inbound_ids:
            return False
        self.trigger_event(
            self.InboundMessageReceived,
            channel=channel,
            provider_message_id=provider_message_id,
            address=address,
            provider_at=require_aware(provider_at, "provider_at"),
            text=text,
        )
        return True

    def window_open(self, at: datetime, channel: Channel = Channel.WHATSAPP) -> bool:
        """Whether free-form messages are allowed at `at`: within 24 hours after the contact last wrote."""
        closes = self.window_closes_at(channel)
        last = self.last_inbound_at.get(channel)
        return closes is not None and last is not None and last <= require_aware(at, "at") < closes

    def window_closes_at(self, channel: Channel = Channel.WHATSAPP) -> datetime | None:
        """When the current customer-service window closes, or None if the contact never wrote."""
        last = self.last_inbound_at.get(channel)
        return None if last is None else last + CUSTOMER_SERVICE_WINDOW

    def in_quiet_hours(self, at: datetime) -> bool:
        """Whether `at` is inside the contact's quiet hours (False without quiet hours)."""
        quiet = self.preferences.quiet_hours
        return quiet is not None and quiet.contains(require_aware(at, "at"))


def _checked(preferences: Preferences) -> Preferences:
    if preferences.quiet_hours is not None:
        preferences.quiet_hours.validate()
    categories = [cap.category for cap in preferences.frequency_caps]
    if len(set(categories)) != len(categories):
        raise DomainError("at most one frequency cap per category")
    for cap in preferences.frequency_caps:
        if cap.max_messages < 1 or cap.period_seconds < 1:
            raise DomainError(f"frequency cap for {cap.category} needs max_messages and period_seconds >= 1")
    language = None if preferences.language is None else normalize_locale(preferences.language)
    return Preferences(language, preferences.preferred_channel, preferences.quiet_hours,
                       tuple(preferences.frequency_caps))
