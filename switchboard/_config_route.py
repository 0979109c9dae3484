"""Routing decisions from the pipeline's routes: a pure function the routing stage calls per message."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aggregates import Channel
from streams.policies import ConditionError, RetryPolicy
from switchboard._config_model import ChannelConfig, PipelineConfig, Route, RouteArm
from switchboard.errors import SwitchboardError


class RoutingError(SwitchboardError):
    """A route's condition could not be evaluated for a message (e.g. it reads a field the message lacks)."""


@dataclass(frozen=True)
class FallbackStep:
    """A channel to try after the previous one failed, with the senders it may use."""

    channel: str
    kind: Channel
    senders: tuple[str, ...]


@dataclass(frozen=True)
class RouteDecision:
    """Where one message goes: the chosen arm's channel and senders, then the fallback chain."""

    route: str
    arm: int
    channel: str
    kind: Channel
    senders: tuple[str, ...]
    template: str | None
    fallback: tuple[FallbackStep, ...]
    retry: RetryPolicy
    deadline_seconds: float | None


def split_bucket(route: str, split_key: str) -> int:
    """0-99 from a hash of the route and the key: a message id always lands in the same bucket.

    The route name is mixed in so that the splits of different routes are independent of each other.
    """
    digest = hashlib.sha256(f"{route}\x00{split_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def choose_arm(arms: tuple[RouteArm, ...], bucket: int) -> int:
    """The arm whose cumulative weight range [from, to) holds the bucket; weights sum to 100."""
    upper = 0
    for index, arm in enumerate(arms):
        upper += arm.weight
        if bucket < upper:
            return index
    raise ValueError(f"bucket {bucket} is outside weights summing to {upper}")


def choose_route(config: PipelineConfig, message_attrs: Mapping[str, Any], split_key: str) -> RouteDecision | None:
    """The first route of the message's tenant whose condition holds, split by `split_key` (the message id).

    `message_attrs` are the CEL variables: `tenant` (its id, which also selects the routes), `message`
    (category, priority, tags, template...) and `recipient` (attributes, tags...). None if no route matches.
    """
    for route in config.routes:
        if route.tenant == message_attrs.get("tenant") and _matches(route, message_attrs):
            return _decide(config, route, split_key)
    return None


def _matches(route: Route, message_attrs: Mapping[str, Any]) -> bool:
    if route.when is None:
        return True
    try:
        return route.when.matches(message_attrs)
    except ConditionError as error:
        # Not a silent skip: a message that falls through to a later route may go out on the wrong channel.
        raise RoutingError(f"route {route.name!r}: {error}") from error


def _decide(config: PipelineConfig, route: Route, split_key: str) -> RouteDecision:
    index = choose_arm(route.arms, split_bucket(route.name, split_key))
    arm = route.arms[index]
    retry = config.retry_policy(route.retry)
    assert retry is not None, "the loader checks that every route names a declared retry policy"
    return RouteDecision(route=route.name, arm=index, channel=arm.channel, kind=_channel(config, arm.channel).kind,
                         senders=arm.senders, template=arm.template,
                         fallback=tuple(_step(config, channel) for channel in route.fallback),
                         retry=retry, deadline_seconds=route.deadline_seconds)


def _step(config: PipelineConfig, channel_id: str) -> FallbackStep:
    channel = _channel(config, channel_id)
    return FallbackStep(channel=channel.id, kind=channel.kind, senders=tuple(s.id for s in channel.senders))


def _channel(config: PipelineConfig, channel_id: str) -> ChannelConfig:
    channel = config.channel(channel_id)
    assert channel is not None, "the loader checks that every route names a declared channel"
    return channel
