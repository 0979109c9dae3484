"""Builds a PipelineConfig from parsed TOML, section by section, then checks the cross-references."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aggregates import Channel, FrequencyCap, MessageCategory, RateLimitTier, TemplateCategory
from streams.policies import QuietHours, RetryPolicy
from streams.policies.rendering import RenderError, text_variables
from switchboard._config_model import (
    BUSINESS_EVENTS,
    SENDER_TIERS,
    ChannelConfig,
    ConfigError,
    Defaults,
    DemoConfig,
    DispatchConfig,
    PairLimit,
    PipelineConfig,
    Quota,
    RateLimits,
    Route,
    RouteArm,
    Sender,
    StreamsConfig,
    TemplateRef,
    Tenant,
    Trigger,
)
from switchboard._config_read import Reader, child, item

SECTIONS = ("streams", "demo", "tenants", "channels", "templates", "triggers", "routes", "rate_limits", "retry",
            "defaults", "dispatch")

# A trigger's variable is a path into the data it sees, not an expression: nothing is evaluated.
# Setting names that hold a secret's value; allowed only as `*_env` (the name of the variable holding it).
_SECRET_LIKE = re.compile(r"token|secret|password|key", re.IGNORECASE)
_VARIABLE_PATH = re.compile(r"(event|customer|tenant)(\.[A-Za-z_][A-Za-z0-9_]*)+")


def read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        raise ConfigError(f"{file}: cannot read ({error.strerror})") from error


def load_bytes(file: Path, data: bytes) -> PipelineConfig:
    """Decodes and validates the file's content; `file` is only named in errors."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{file}: not UTF-8 text: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from error
    return parse(file, raw)


def parse(file: Path, raw: dict[str, Any]) -> PipelineConfig:
    """The whole file; sections that others refer to are read first."""
    read = Reader(file)
    read.table("", raw, SECTIONS)
    tenants = _tenants(read, raw.get("tenants", []))
    tenant_ids = {tenant.id for tenant in tenants}
    channels = _channels(read, raw.get("channels", []), tenant_ids)
    templates = _templates(read, raw.get("templates", []))
    retry = _retry(read, raw.get("retry", {}))
    return PipelineConfig(
        streams=_streams(read, raw.get("streams", {})),
        demo=_demo(read, raw.get("demo", {})),
        tenants=tenants,
        channels=channels,
        templates=templates,
        triggers=_triggers(read, raw.get("triggers", []), tenant_ids, {t.name: t for t in templates}),
        routes=_routes(read, raw.get("routes", []), tenant_ids, {c.id: c for c in channels},
                       {t.name for t in templates}, {name for name, _ in retry}),
        rate_limits=_rate_limits(read, raw.get("rate_limits", {}), tenant_ids, channels),
        retry=retry,
        defaults=_defaults(read, raw.get("defaults", {})),
        dispatch=_dispatch(read, raw.get("dispatch", {})),
    )


def _entries(read: Reader, key: str, value: Any) -> Iterator[tuple[str, Any]]:
    for index, entry in enumerate(read.array(key, value)):
        yield item(key, index), entry


def _unique(read: Reader, key: str, name: str, seen: set[str]) -> str:
    if name in seen:
        raise read.error(key, f"repeats {name!r}, which is declared earlier")
    seen.add(name)
    return name


def _known(read: Reader, key: str, value: str, known: set[str] | dict[str, Any], what: str) -> str:
    if value not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise read.error(key, f"names {value!r}, which is not a known {what} (known: {listed})")
    return value


def _streams(read: Reader, value: Any) -> StreamsConfig:
    values = read.table("streams", value, ("partitions", "replication"))
    partitions = read.integer("streams.partitions", values.get("partitions", 6), 1)
    replication = read.integer("streams.replication", values.get("replication", -1), -1)
    if replication == 0:
        raise read.error("streams.replication", "must be -1 (automatic) or at least 1, not 0")
    return StreamsConfig(partitions=partitions, replication=replication)


def _dispatch(read: Reader, value: Any) -> DispatchConfig:
    names = ("reconcile_seconds", "breaker_window", "breaker_min_calls", "breaker_error_rate", "breaker_open_seconds")
    values = read.table("dispatch", value, names)
    default = DispatchConfig()
    rate = read.positive("dispatch.breaker_error_rate", values.get("breaker_error_rate", default.breaker_error_rate))
    if rate > 1:
        raise read.error("dispatch.breaker_error_rate", f"must be a share between 0 and 1, not {rate}")
    window = read.integer("dispatch.breaker_window", values.get("breaker_window", default.breaker_window), 1)
    min_calls = read.integer("dispatch.breaker_min_calls", values.get("breaker_min_calls", default.breaker_min_calls),
                             1)
    if min_calls > window:
        raise read.error("dispatch.breaker_min_calls", f"must not exceed breaker_window ({window})")
    return DispatchConfig(
        reconcile_seconds=read.positive("dispatch.reconcile_seconds",
                                        values.get("reconcile_seconds", default.reconcile_seconds)),
        breaker_window=window, breaker_min_calls=min_calls, breaker_error_rate=rate,
        breaker_open_seconds=read.positive("dispatch.breaker_open_seconds",
                                           values.get("breaker_open_seconds", default.breaker_open_seconds)),
    )


def _demo(read: Reader, value: Any) -> DemoConfig:
    values = read.table("demo", value, ("messages",))
    return DemoConfig(messages=read.integer("demo.messages", values.get("messages", 8), 1))


def _tenants(read: Reader, value: Any) -> tuple[Tenant, ...]:
    tenants, seen = [], set[str]()
    for key, entry in _entries(read, "tenants", value):
        values = read.table(key, entry, ("id", "name", "timezone", "rate_limit_tier"), required=("id",))
        tenant_id = _unique(read, child(key, "id"), read.name(child(key, "id"), values["id"]), seen)
        tenants.append(Tenant(
            id=tenant_id,
            name=read.string(child(key, "name"), values.get("name", tenant_id)),
            timezone=read.zone(child(key, "timezone"), values.get("timezone", "UTC")),
            rate_limit_tier=read.choice(child(key, "rate_limit_tier"), values.get("rate_limit_tier", "standard"),
                                        RateLimitTier),
        ))
    return tuple(tenants)


def _channels(read: Reader, value: Any, tenant_ids: set[str]) -> tuple[ChannelConfig, ...]:
    channels, seen = [], set[str]()
    for key, entry in _entries(read, "channels", value):
        values = read.table(key, entry, ("id", "kind", "tenant", "provider", "senders", "driver", "settings"),
                            required=("id", "kind", "tenant", "provider", "senders"))
        kind = read.choice(child(key, "kind"), values["kind"], Channel, exclude=(Channel.UNKNOWN,))
        channels.append(ChannelConfig(
            id=_unique(read, child(key, "id"), read.name(child(key, "id"), values["id"]), seen),
            kind=kind,
            tenant=_known(read, child(key, "tenant"), read.name(child(key, "tenant"), values["tenant"]), tenant_ids,
                          "tenant"),
            provider=read.name(child(key, "provider"), values["provider"]),
            senders=_senders(read, child(key, "senders"), values["senders"], kind),
            driver=read.name(child(key, "driver"), values.get("driver", kind.value)),
            settings=_settings(read, child(key, "settings"), values.get("settings", {})),
        ))
    return tuple(channels)


def _settings(read: Reader, key: str, value: Any) -> tuple[tuple[str, str], ...]:
    """A driver's plain settings: strings only, and never a secret (those are named by `*_env` keys)."""
    settings = read.mapping(key, value)
    for name, setting in settings.items():
        if not isinstance(setting, str):
            raise read.error(child(key, name), f"must be a string, not {setting!r}")
        if _SECRET_LIKE.search(name) and not name.endswith("_env"):
            raise read.error(child(key, name), "looks like a secret: put it in the environment and name the "
                                               "variable with a `*_env` setting")
    return tuple(sorted(settings.items()))


def _senders(read: Reader, key: str, value: Any, kind: Channel) -> tuple[Sender, ...]:
    senders, seen = [], set[str]()
    for sender_key, entry in _entries(read, key, value):
        senders.append(_sender(read, sender_key, entry, kind, seen))
    if not senders:
        raise read.error(key, "must list at least one sender account")
    return tuple(senders)


def _sender(read: Reader, key: str, entry: Any, kind: Channel, seen: set[str]) -> Sender:
    values = read.table(key, entry, ("id", "address", "tier", "per_second", "burst"), required=("id", "address"))
    address = read.string(child(key, "address"), values["address"])
    if kind is Channel.WHATSAPP and not address.isdigit():
        raise read.error(child(key, "address"), f"must be a WhatsApp phone-number id (digits only), not {address!r}")
    tier = read.string(child(key, "tier"), values.get("tier", "standard"))
    if tier not in SENDER_TIERS:
        raise read.error(child(key, "tier"), f"must be one of {', '.join(SENDER_TIERS)}, not {tier!r}")
    per_second = read.positive(child(key, "per_second"), values.get("per_second", SENDER_TIERS[tier]))
    burst = read.positive(child(key, "burst"), values.get("burst", per_second))
    return Sender(id=_unique(read, child(key, "id"), read.name(child(key, "id"), values["id"]), seen),
                  address=address, tier=tier, per_second=per_second, burst=burst)


def _templates(read: Reader, value: Any) -> tuple[TemplateRef, ...]:
    templates, seen = [], set[str]()
    for key, entry in _entries(read, "templates", value):
        values = read.table(key, entry, ("name", "category", "parameters", "locales", "default_locale", "text"),
                            required=("name", "category"))
        locales = read.names(child(key, "locales"), values.get("locales", ["en"]))
        default_locale = read.string(child(key, "default_locale"), values.get("default_locale", locales[0]))
        if default_locale not in locales:
            raise read.error(child(key, "default_locale"), f"must be one of the template's locales {list(locales)}")
        parameters = read.names(child(key, "parameters"), values.get("parameters", []))
        templates.append(TemplateRef(
            name=_unique(read, child(key, "name"), read.name(child(key, "name"), values["name"]), seen),
            category=read.choice(child(key, "category"), values["category"], TemplateCategory),
            parameters=parameters,
            locales=locales,
            default_locale=default_locale,
            texts=_template_texts(read, child(key, "text"), values.get("text", {}), locales, parameters),
        ))
    return tuple(templates)


def _template_texts(read: Reader, key: str, value: Any, locales: tuple[str, ...],
                    parameters: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """locale -> text: each locale one of the template's, each text using only the template's parameters."""
    texts = []
    for locale, source in read.mapping(key, value).items():
        entry = child(key, locale)
        if locale not in locales:
            raise read.error(entry, f"names a locale the template is not in (its locales: {list(locales)})")
        text = read.string(entry, source)
        try:
            unknown = sorted(text_variables(text) - set(parameters))
        except RenderError as error:
            raise read.error(entry, str(error)) from None
        if unknown:
            raise read.error(entry, f"uses {', '.join(unknown)}, not among the template's parameters "
                                    f"{list(parameters)}")
        texts.append((locale, text))
    return tuple(texts)


def _triggers(read: Reader, value: Any, tenant_ids: set[str], templates: dict[str, TemplateRef]) -> tuple[Trigger, ...]:
    triggers, seen = [], set[str]()
    for key, entry in _entries(read, "triggers", value):
        values = read.table(key, entry, ("name", "tenant", "event", "condition", "template", "variables"),
                            required=("name", "tenant", "event", "template"))
        template = templates[_known(read, child(key, "template"), read.name(child(key, "template"),
                                                                          values["template"]), templates, "template")]
        triggers.append(Trigger(
            name=_unique(read, child(key, "name"), read.name(child(key, "name"), values["name"]), seen),
            tenant=_known(read, child(key, "tenant"), read.name(child(key, "tenant"), values["tenant"]), tenant_ids,
                          "tenant"),
            event=_known(read, child(key, "event"), read.name(child(key, "event"), values["event"]),
                         set(BUSINESS_EVENTS), "business event type"),
            condition=read.condition(child(key, "condition"), values["condition"]) if "condition" in values else None,
            template=template.name,
            category=MessageCategory(template.category.value),
            variables=_variables(read, child(key, "variables"), values.get("variables", {}), template),
        ))
    return tuple(triggers)


def _variables(read: Reader, key: str, value: Any, template: TemplateRef) -> tuple[tuple[str, str], ...]:
    """Each template parameter gets exactly one path into the event or the customer."""
    values = read.mapping(key, value)
    for name, path in values.items():
        if name not in template.parameters:
            raise read.error(child(key, name), f"is not a parameter of template {template.name!r}")
        if not isinstance(path, str) or not _VARIABLE_PATH.fullmatch(path):
            raise read.error(child(key, name), f"must be a path like event.order_id or customer.first_name, "
                                               f"not {path!r}")
    missing = [name for name in template.parameters if name not in values]
    if missing:
        raise read.error(key, f"lacks parameter {missing[0]!r} of template {template.name!r}")
    return tuple((name, values[name]) for name in template.parameters)


def _routes(read: Reader, value: Any, tenant_ids: set[str], channels: dict[str, ChannelConfig],
            templates: set[str], retries: set[str]) -> tuple[Route, ...]:
    routes, seen = [], set[str]()
    for key, entry in _entries(read, "routes", value):
        values = read.table(key, entry, ("name", "tenant", "when", "channel", "senders", "template", "arms",
                                         "fallback", "retry", "deadline_seconds"), required=("name", "tenant"))
        tenant = _known(read, child(key, "tenant"), read.name(child(key, "tenant"), values["tenant"]), tenant_ids,
                        "tenant")
        own = {cid: channel for cid, channel in channels.items() if channel.tenant == tenant}
        arms = _arms(read, key, values, tenant, own, templates)
        routes.append(Route(
            name=_unique(read, child(key, "name"), read.name(child(key, "name"), values["name"]), seen),
            tenant=tenant,
            when=read.condition(child(key, "when"), values["when"]) if "when" in values else None,
            arms=arms,
            fallback=_fallback(read, child(key, "fallback"), values.get("fallback", []), tenant, own, arms),
            retry=_known(read, child(key, "retry"), read.name(child(key, "retry"), values.get("retry", "default")),
                         retries, "retry policy"),
            deadline_seconds=(read.positive(child(key, "deadline_seconds"), values["deadline_seconds"])
                              if "deadline_seconds" in values else None),
        ))
    return tuple(routes)


def _arms(read: Reader, key: str, values: dict[str, Any], tenant: str, channels: dict[str, ChannelConfig],
          templates: set[str]) -> tuple[RouteArm, ...]:
    """Either one `channel` (all traffic) or `arms`, a weighted split whose weights sum to 100."""
    if ("arms" in values) == ("channel" in values):
        raise read.error(key, "needs exactly one of channel (one destination) or arms (a weighted split)")
    if "channel" in values:
        single = {name: values[name] for name in ("channel", "senders", "template") if name in values}
        return (_arm(read, key, single | {"weight": 100}, tenant, channels, templates),)
    for name in ("senders", "template"):
        if name in values:
            raise read.error(child(key, name), "belongs inside each of the route's arms")
    arms = tuple(_arm(read, arm_key, entry, tenant, channels, templates)
                 for arm_key, entry in _entries(read, child(key, "arms"), values["arms"]))
    total = sum(arm.weight for arm in arms)
    if total != 100:
        raise read.error(child(key, "arms"), f"weights must sum to 100, not {total}")
    return arms


def _arm(read: Reader, key: str, entry: Any, tenant: str, channels: dict[str, ChannelConfig],
         templates: set[str]) -> RouteArm:
    values = read.table(key, entry, ("channel", "senders", "template", "weight"), required=("channel", "weight"))
    channel = channels[_known(read, child(key, "channel"), read.name(child(key, "channel"), values["channel"]),
                              channels, f"channel of tenant {tenant!r}")]
    senders = read.names(child(key, "senders"), values.get("senders", [s.id for s in channel.senders]))
    for index, sender in enumerate(senders):
        _known(read, item(child(key, "senders"), index), sender, {s.id for s in channel.senders},
               f"sender of channel {channel.id!r}")
    if not senders:
        raise read.error(child(key, "senders"), "must name at least one sender (or be left out for all)")
    weight = read.integer(child(key, "weight"), values["weight"], 0)
    if weight > 100:
        raise read.error(child(key, "weight"), f"must be at most 100, not {weight}")
    template = values.get("template")
    if template is not None:
        _known(read, child(key, "template"), read.name(child(key, "template"), template), templates, "template")
    return RouteArm(channel=channel.id, senders=senders, weight=weight, template=template)


def _fallback(read: Reader, key: str, value: Any, tenant: str, channels: dict[str, ChannelConfig],
              arms: tuple[RouteArm, ...]) -> tuple[str, ...]:
    """A chain tried in order after the chosen arm's channel fails: no repeats, never back to the start."""
    chain = read.names(key, value)
    own = {arm.channel for arm in arms}
    for index, channel in enumerate(chain):
        entry = item(key, index)
        _known(read, entry, channel, channels, f"channel of tenant {tenant!r}")
        if channel in own:
            raise read.error(entry, f"names the route's own channel {channel!r}: the chain would loop back to it")
        if channel in chain[:index]:
            raise read.error(entry, f"repeats channel {channel!r}: the chain would cycle")
    return chain


def _quota(read: Reader, key: str, value: Any, senders: int) -> Quota:
    values = read.table(key, value, ("per_second", "burst", "daily"), required=("per_second",))
    per_second = read.positive(child(key, "per_second"), values["per_second"])
    daily = read.integer(child(key, "daily"), values["daily"], 1) if "daily" in values else None
    if daily is not None and daily < senders:
        # The day is split evenly over the senders, rounded down: some would get no message at all.
        raise read.error(child(key, "daily"), f"is {daily}, fewer than the {senders} senders that share it")
    return Quota(per_second=per_second,
                 burst=read.positive(child(key, "burst"), values.get("burst", max(1.0, per_second))), daily=daily)


def _rate_limits(read: Reader, value: Any, tenant_ids: set[str], channels: tuple[ChannelConfig, ...]) -> RateLimits:
    values = read.table("rate_limits", value, ("pair", "tenants", "providers"))
    pair = None
    if "pair" in values:
        pair_values = read.table("rate_limits.pair", values["pair"], ("messages", "per_seconds"),
                                 required=("messages", "per_seconds"))
        pair = PairLimit(messages=read.integer("rate_limits.pair.messages", pair_values["messages"], 1),
                         per_seconds=read.positive("rate_limits.pair.per_seconds", pair_values["per_seconds"]))
    tenant_senders, provider_senders = Counter[str](), Counter[str]()
    for channel in channels:
        tenant_senders[channel.tenant] += len(channel.senders)
        provider_senders[channel.provider] += len(channel.senders)
    return RateLimits(pair=pair, tenants=_quotas(read, "rate_limits.tenants", values.get("tenants", {}), tenant_ids,
                                                 "tenant", tenant_senders),
                      providers=_quotas(read, "rate_limits.providers", values.get("providers", {}),
                                        set(provider_senders), "provider (no channel uses it)", provider_senders))


def _quotas(read: Reader, key: str, value: Any, known: set[str], what: str,
            senders: Counter[str]) -> tuple[tuple[str, Quota], ...]:
    quotas = []
    for name, entry in read.mapping(key, value).items():
        _known(read, child(key, name), name, known, what)
        quotas.append((name, _quota(read, child(key, name), entry, senders[name])))
    return tuple(quotas)


def _retry(read: Reader, value: Any) -> tuple[tuple[str, RetryPolicy], ...]:
    """Named policies; `default` exists always (the built-in one unless the file declares it)."""
    policies = {"default": RetryPolicy()}
    for name, entry in read.mapping("retry", value).items():
        policies[name] = _retry_policy(read, child("retry", name), entry)
    return tuple(policies.items())


def _retry_policy(read: Reader, key: str, value: Any) -> RetryPolicy:
    defaults = RetryPolicy()
    values = read.table(key, value, ("max_attempts", "base_seconds", "factor", "cap_seconds"))
    base = read.positive(child(key, "base_seconds"), values.get("base_seconds", defaults.base_seconds))
    factor = read.positive(child(key, "factor"), values.get("factor", defaults.factor))
    if factor < 1:
        raise read.error(child(key, "factor"), f"must be at least 1 (delays never shrink), not {factor}")
    cap = read.positive(child(key, "cap_seconds"), values.get("cap_seconds", defaults.cap_seconds))
    if cap < base:
        raise read.error(child(key, "cap_seconds"), f"must be at least base_seconds ({base}), not {cap}")
    return RetryPolicy(max_attempts=read.integer(child(key, "max_attempts"),
                                                 values.get("max_attempts", defaults.max_attempts), 1),
                       base_seconds=base, factor=factor, cap_seconds=cap)


def _defaults(read: Reader, value: Any) -> Defaults:
    values = read.table("defaults", value, ("quiet_hours", "frequency_caps"))
    quiet: QuietHours | None = None
    exempt: tuple[MessageCategory, ...] = ()
    if "quiet_hours" in values:
        quiet, exempt = _quiet_hours(read, "defaults.quiet_hours", values["quiet_hours"])
    caps, seen = [], set[str]()
    for key, entry in _entries(read, "defaults.frequency_caps", values.get("frequency_caps", [])):
        cap_values = read.table(key, entry, ("category", "max_messages", "period_seconds"),
                                required=("category", "max_messages", "period_seconds"))
        category = read.choice(child(key, "category"), cap_values["category"], MessageCategory)
        _unique(read, child(key, "category"), category.value, seen)
        caps.append(FrequencyCap(category=category,
                                 max_messages=read.integer(child(key, "max_messages"), cap_values["max_messages"], 1),
                                 period_seconds=read.integer(child(key, "period_seconds"),
                                                             cap_values["period_seconds"], 1)))
    return Defaults(quiet_hours=quiet, quiet_hours_exempt=exempt, frequency_caps=tuple(caps))


def _quiet_hours(read: Reader, key: str, value: Any) -> tuple[QuietHours, tuple[MessageCategory, ...]]:
    values = read.table(key, value, ("start", "end", "timezone", "exempt"), required=("start", "end"))
    start = read.clock(child(key, "start"), values["start"])
    end = read.clock(child(key, "end"), values["end"])
    if start == end:
        raise read.error(child(key, "end"), "must differ from start (an empty or all-day window)")
    zone = read.zone(child(key, "timezone"), values.get("timezone", "UTC"))
    exempt_key = child(key, "exempt")
    exempt = tuple(read.choice(item(exempt_key, index), entry, MessageCategory)
                   for index, entry in enumerate(read.array(exempt_key, values.get("exempt", []))))
    return QuietHours(start=start, end=end, timezone=zone), exempt
