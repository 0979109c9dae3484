"""The typed model of a validated pipeline.toml: frozen dataclasses, built only by the loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from aggregates import Channel, FrequencyCap, MessageCategory, RateLimitTier, TemplateCategory
from streams.policies import Condition, QuietHours, RetryPolicy
from switchboard.errors import SwitchboardError

# The business event types a trigger may listen to: the records under schemas/avro/switchboard.business.*
# (a unit test keeps the two in step, so a new event schema cannot be forgotten here).
BUSINESS_EVENTS = frozenset({"CustomerTierChanged", "DomainEvent", "OrderPlaced", "OrderShipped", "PaymentFailed"})

# Meta's WhatsApp Cloud API throughput per phone number: 80 msg/s by default, 1,000 once upgraded.
SENDER_TIERS: dict[str, float] = {"standard": 80.0, "upgraded": 1000.0}


class ConfigError(SwitchboardError):
    """pipeline.toml is missing, unreadable or holds a wrong value."""


@dataclass(frozen=True)
class StreamsConfig:
    """How event topics are laid out."""

    partitions: int = 6
    replication: int = -1


@dataclass(frozen=True)
class DemoConfig:
    """Defaults of the demo job."""

    messages: int = 8


@dataclass(frozen=True)
class Tenant:
    """A customer of Switchboard; its zone is the recipients' zone when theirs is unknown."""

    id: str
    name: str
    timezone: str
    rate_limit_tier: RateLimitTier


@dataclass(frozen=True)
class Sender:
    """One sender account of a channel (a WhatsApp phone-number id, an SMS number) and its throughput."""

    id: str
    address: str
    tier: str
    per_second: float
    burst: float


@dataclass(frozen=True)
class ChannelConfig:
    """A channel of one tenant, served by one provider through its sender accounts."""

    id: str
    kind: Channel
    tenant: str
    provider: str
    senders: tuple[Sender, ...]
    # The driver plugin (entry point in `switchboard.channels`) and its plain settings; secrets stay in the environment.
    driver: str = ""
    settings: tuple[tuple[str, str], ...] = ()

    def sender(self, sender_id: str) -> Sender | None:
        return self._senders_by_id.get(sender_id)

    @cached_property
    def _senders_by_id(self) -> dict[str, Sender]:
        # Asked for every send: a dict, not a scan (reversed, so the first of a repeated id wins, as a scan found it).
        return {sender.id: sender for sender in reversed(self.senders)}


@dataclass(frozen=True)
class TemplateRef:
    """A template the pipeline may send, with the parameter names its versions take."""

    name: str
    category: TemplateCategory
    parameters: tuple[str, ...]
    # Languages the template is approved in; a request's locale falls back along pt_BR -> pt -> default_locale.
    locales: tuple[str, ...] = ("en",)
    default_locale: str = "en"
    # Per locale, the template as plain text (Jinja2 over its parameters) for channels whose driver sends text
    # only (SMS, Telegram, LINE, Messenger): WhatsApp's approved template does not exist there.
    texts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Trigger:
    """A business event that, when its condition holds, asks for a message from a template."""

    name: str
    tenant: str
    event: str
    condition: Condition | None
    template: str
    category: MessageCategory
    # parameter name -> dotted path into the CEL variables (`event.order_id`, `customer.first_name`)
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RouteArm:
    """One arm of a weighted split: a channel, the senders it may use, optionally another template."""

    channel: str
    senders: tuple[str, ...]
    weight: int
    template: str | None


@dataclass(frozen=True)
class Route:
    """Where matching messages go: the first route whose condition holds wins."""

    name: str
    tenant: str
    when: Condition | None
    arms: tuple[RouteArm, ...]
    fallback: tuple[str, ...]
    retry: str
    deadline_seconds: float | None


@dataclass(frozen=True)
class PairLimit:
    """At most `messages` from one sender to one recipient per `per_seconds`."""

    messages: int
    per_seconds: float


@dataclass(frozen=True)
class Quota:
    """A per-second rate (token bucket) and an optional daily quota."""

    per_second: float
    burst: float
    daily: int | None


@dataclass(frozen=True)
class RateLimits:
    """Limits beyond each sender's own throughput."""

    pair: PairLimit | None = None
    tenants: tuple[tuple[str, Quota], ...] = ()
    providers: tuple[tuple[str, Quota], ...] = ()


@dataclass(frozen=True)
class Defaults:
    """What applies to a recipient who has not chosen otherwise."""

    quiet_hours: QuietHours | None = None
    # categories quiet hours never hold back (a one-time password is useless in the morning)
    quiet_hours_exempt: tuple[MessageCategory, ...] = ()
    frequency_caps: tuple[FrequencyCap, ...] = ()


@dataclass(frozen=True)
class DispatchConfig:
    """How the dispatcher treats lost outcomes and unwell providers (the circuit breaker per sender account)."""

    # An attempt whose outcome was lost (the worker died during the call) waits this long for a receipt before
    # it is retried: re-sending at once could deliver the message twice.
    reconcile_seconds: float = 60.0
    breaker_window: int = 20  # the last N send results of a sender
    breaker_min_calls: int = 10  # at least this many of them before the circuit may open
    breaker_error_rate: float = 0.5  # the share of provider errors (5xx, timeouts, throttling) that opens it
    breaker_open_seconds: float = 30.0  # then one probe; its success closes the circuit


@dataclass(frozen=True)
class PipelineConfig:
    """The whole validated pipeline.toml."""

    streams: StreamsConfig = field(default_factory=StreamsConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    tenants: tuple[Tenant, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    templates: tuple[TemplateRef, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    routes: tuple[Route, ...] = ()
    rate_limits: RateLimits = field(default_factory=RateLimits)
    retry: tuple[tuple[str, RetryPolicy], ...] = ()
    defaults: Defaults = field(default_factory=Defaults)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)

    def channel(self, channel_id: str) -> ChannelConfig | None:
        return self._channels_by_id.get(channel_id)

    def retry_policy(self, name: str) -> RetryPolicy | None:
        return self._retry_by_name.get(name)

    # Asked several times per message: built once per loaded declaration (it is frozen), not scanned per call.
    @cached_property
    def _channels_by_id(self) -> dict[str, ChannelConfig]:
        return {channel.id: channel for channel in reversed(self.channels)}

    @cached_property
    def _retry_by_name(self) -> dict[str, RetryPolicy]:
        return dict(self.retry)
