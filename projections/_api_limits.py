"""Rate-limit tiers per client id and per IP address, declared in a TOML file and re-read when it changes."""

from __future__ import annotations

import logging
import math
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from projections._api_reads import ApiError
from streams.policies import TokenBucket
from switchboard.errors import SwitchboardError

__all__ = ["DEFAULT_LIMITS", "Limits", "LimitsError", "LimitsWatcher", "RateLimiter", "Tier", "parse_limits"]

_log = logging.getLogger("projections.api")


class LimitsError(SwitchboardError):
    """The limits file is not valid; the message names the file and the key."""


@dataclass(frozen=True)
class Tier:
    """`per_second` requests a second on average, `burst` at once; `per_second` 0 means unlimited."""

    name: str
    per_second: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.per_second == 0


@dataclass(frozen=True)
class Limits:
    """The tiers, which tier each client is on (others: `default_tier`), the limit per IP address, and how many
    API processes share them behind one balancer (`replicas`: each enforces its share, 1/replicas of each)."""

    tiers: Mapping[str, Tier]
    default_tier: str
    per_ip: Tier
    clients: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1

    def tier_of(self, client_id: str) -> Tier:
        return self.tiers[self.clients.get(client_id, self.default_tier)]

    def share(self, tier: Tier) -> Tier:
        """What one process enforces of a tier: its rate and burst divided by the replicas (a burst of at least
        1), so that N processes behind a balancer that spreads requests evenly let through the tier, not N times
        it."""
        if self.replicas == 1 or tier.unlimited:
            return tier
        return Tier(tier.name, tier.per_second / self.replicas, max(1.0, tier.burst / self.replicas))


DEFAULT_LIMITS: Final = Limits(
    tiers={"sandbox": Tier("sandbox", 5, 10), "standard": Tier("standard", 50, 100),
           "high": Tier("high", 500, 1000), "unlimited": Tier("unlimited", 0, 0)},
    default_tier="sandbox", per_ip=Tier("per_ip", 200, 400))


def parse_limits(text: str, where: str) -> Limits:
    """`[tiers.NAME] per_second, burst`, `[clients] id = "tier"`, `default_tier`, `[per_ip] per_second, burst`,
    `replicas`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LimitsError(f"{where}: not TOML ({error})") from None
    unknown = sorted(set(data) - {"tiers", "clients", "default_tier", "per_ip", "replicas"})
    if unknown:
        raise LimitsError(f"{where}: unknown key {unknown[0]!r}")
    tiers = {name: _tier(value, name, f"{where}: tiers.{name}") for name, value in _table(data, "tiers", where).items()}
    if not tiers:
        raise LimitsError(f"{where}: tiers: declare at least one tier")
    default = data.get("default_tier", next(iter(tiers)))
    if default not in tiers:
        raise LimitsError(f"{where}: default_tier: {default!r} is not a declared tier")
    clients = _table(data, "clients", where)
    for client, tier in clients.items():
        if tier not in tiers:
            raise LimitsError(f"{where}: clients.{client}: {tier!r} is not a declared tier")
    per_ip = _tier(data["per_ip"], "per_ip", f"{where}: per_ip") if "per_ip" in data else DEFAULT_LIMITS.per_ip
    replicas = data.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise LimitsError(f"{where}: replicas: a whole number >= 1 (the API processes sharing these limits)")
    return Limits(tiers, default, per_ip, clients, replicas)


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise LimitsError(f"{where}: {key} must be a table")
    return value


def _tier(value: Any, name: str, where: str) -> Tier:
    if not isinstance(value, dict) or set(value) - {"per_second", "burst"}:
        raise LimitsError(f"{where}: a table with per_second and burst only")
    rate: Any = value.get("per_second")
    burst: Any = value.get("burst", rate)
    if not _number(rate) or float(rate) < 0:
        raise LimitsError(f"{where}.per_second: a number >= 0 (0: unlimited)")
    if float(rate) > 0 and (not _number(burst) or float(burst) < 1):
        raise LimitsError(f"{where}.burst: a number >= 1")
    return Tier(name, float(rate), float(burst) if _number(burst) else 0.0)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class LimitsWatcher:
    """The current limits of a file, re-read when its modification time changes (an invalid file keeps the old)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic, every: float = 1.0) -> None:
        self.path, self._clock, self._every = path, clock, every
        self.last_error: str | None = None
        self._stamp: int | None = None
        self._checked = -math.inf
        self._limits = DEFAULT_LIMITS if path is None else self._load(path)

    def _load(self, path: Path) -> Limits:
        try:
            self._stamp = path.stat().st_mtime_ns
            return parse_limits(path.read_text(encoding="utf-8"), str(path))
        except OSError as error:
            raise LimitsError(f"{path}: {error.strerror}") from None

    def current(self) -> Limits:
        """The limits in force; looks at the file at most once every `every` seconds."""
        if self.path is not None and self._clock() - self._checked >= self._every:
            self._checked = self._clock()
            self._reload(self.path)
        return self._limits

    def _reload(self, path: Path) -> None:
        try:
            if path.stat().st_mtime_ns == self._stamp:
                return
            self._limits, self.last_error = self._load(path), None
            _log.info("api: rate limits reloaded from %s", path)
        except LimitsError as error:
            self.last_error = str(error)
            _log.warning("api: keeping the previous rate limits: %s", error)


class RateLimiter:
    """Token buckets by (kind, id); a changed tier applies to the next request, keeping the tokens left."""

    def __init__(self, watcher: LimitsWatcher, clock: Callable[[], float] = time.monotonic,
                 capacity: int = 100_000) -> None:
        self.watcher, self._clock, self._capacity = watcher, clock, capacity
        self._buckets: OrderedDict[tuple[str, str], tuple[Tier, TokenBucket]] = OrderedDict()

    def client(self, client_id: str, cost: float = 1.0) -> None:
        """Raises 429 rate_limited (with Retry-After) when the client's tier has no room for `cost` requests."""
        limits = self.watcher.current()
        self._take("client", client_id, limits.share(limits.tier_of(client_id)), cost)

    def address(self, ip: str) -> None:
        """Raises 429 rate_limited when this IP address has sent more than its limit."""
        limits = self.watcher.current()
        self._take("ip", ip, limits.share(limits.per_ip), 1.0)

    def _take(self, kind: str, who: str, tier: Tier, cost: float) -> None:
        if tier.unlimited:
            return
        now = self._clock()
        bucket = self._bucket((kind, who), tier, now)
        cost = min(cost, tier.burst)  # a batch larger than the burst waits for a full bucket, never forever
        taken, after = bucket.take(now, cost)
        self._buckets[(kind, who)] = (tier, after)
        if not taken:
            wait = max(1, math.ceil(after.wait_time(now, cost)))
            raise ApiError(429, "rate_limited", f"over the {kind} limit ({tier.name}: {tier.per_second:g}/s, "
                           f"burst {tier.burst:g}); retry after {wait} s",
                           [{"limit": kind, "tier": tier.name, "retry_after": wait}], {"Retry-After": str(wait)})

    def _bucket(self, key: tuple[str, str], tier: Tier, now: float) -> TokenBucket:
        entry = self._buckets.pop(key, None)
        if entry is None or entry[0] != tier:
            tokens = tier.burst if entry is None else min(tier.burst, entry[1].refilled(now).tokens)
            entry = (tier, TokenBucket(tier.per_second, tier.burst, tokens, now))
        self._buckets[key] = entry  # most recently used last; the oldest idle buckets go first
        while len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)
        return entry[1]
