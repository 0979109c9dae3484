"""The dispatcher's way out: one channel driver per declared channel, and a job's content as the driver's message."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

from connectors import (
    ChannelDriver,
    Media,
    MediaKind,
    OutboundMessage,
    Template,
    TemplateParam,
    Text,
    TextParam,
)
from connectors.inprocess import InProcessDriver
from connectors.registry import load_drivers
from streams.pipeline._commands import send_reference
from streams.pipeline._dispatch import Limits
from switchboard.config import PipelineConfig, Quota

__all__ = ["DriverPool", "driver_classes", "limits_for", "outbound", "sends_templates"]


class DriverPool:
    """Drivers built lazily from `[[channels]]` (`driver`, `settings`); rebuilt when a channel's declaration changes."""

    def __init__(self, concurrency: int = 64) -> None:
        self._drivers: dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ChannelDriver]] = {}
        self._gate = asyncio.Semaphore(concurrency)  # bounded concurrency towards the providers

    def driver(self, config: PipelineConfig, channel_id: str) -> ChannelDriver:
        """The driver of a declared channel; ValueError if the channel is not (or no longer) declared."""
        channel = config.channel(channel_id)
        if channel is None:
            raise ValueError(f"channel {channel_id!r} is not declared in the pipeline")
        identity = (channel.driver, channel.settings)
        known = self._drivers.get(channel_id)
        if known is None or known[0] != identity:
            driver_class = driver_classes()[channel.driver]
            self._drivers[channel_id] = (identity, driver_class.from_settings(dict(channel.settings)))
        return self._drivers[channel_id][1]

    async def send(self, driver: ChannelDriver, message: OutboundMessage) -> Any:
        """One send through the concurrency gate; drivers return a SendResult for every failure."""
        async with self._gate:
            return await driver.send(message)

    async def aclose(self) -> None:
        """Closes every driver (their HTTP sessions)."""
        for _, driver in self._drivers.values():
            await driver.aclose()


@functools.cache
def driver_classes() -> dict[str, type[ChannelDriver]]:
    """Driver name -> class: the installed plugins and the built-in in-process stand-in (read once per process)."""
    # The in-process channel is built in rather than a plugin: it stands in for a provider in tests and
    # benchmarks, has no webhooks, and so is not one of the channels the driver contract speaks for.
    return {**load_drivers(), InProcessDriver.channel: InProcessDriver}


def sends_templates(config: PipelineConfig, channel_id: str | None) -> bool:
    """Whether the channel's driver takes a provider template (WhatsApp's); False: it sends text only, so a
    template goes out as its declared text. An unknown channel or driver counts as taking one (its send says)."""
    channel = config.channel(channel_id) if channel_id is not None else None
    driver = driver_classes().get(channel.driver) if channel is not None else None
    return driver is None or "Template" in driver.capabilities.content


def outbound(job: Mapping[str, Any], sender_address: str) -> OutboundMessage:
    """The driver's message for a dispatch job."""
    content = job["content"]
    body: Text | Template | Media
    if content["type"] == "text":
        body = Text(content["body"])
    elif content["type"] == "media":
        body = _media(content)
    else:
        params: tuple[TemplateParam, ...] = (
            tuple(TextParam(text, name) for name, text in content["named"])
            or tuple(TextParam(text) for text in content["positional"]))
        header = _media(content["header"]) if content.get("header") else None
        body = Template(content["name"], content["language"], body=params, header=header)
    reference = send_reference(job["contact_id"], job["message_id"], job.get("trace_id"))
    return OutboundMessage(message_id=reference, sender=sender_address, recipient=job["address"], content=body)


def _media(content: Mapping[str, Any]) -> Media:
    return Media(MediaKind(content["kind"]), link=content.get("link"), media_id=content.get("media_id"),
                 caption=content.get("caption"), filename=content.get("filename"))


def limits_for(config: PipelineConfig, channel_id: str, sender_id: str) -> Limits | None:
    """The sender's effective limits: its own rate, capped by its share of the tenant's and provider's quotas.

    A tenant's (provider's) quota, per second and per day, is split evenly over its senders (a day's share
    rounded down), so the sum over senders never exceeds it while each share still lives in exactly one
    partition, with its sender.
    """
    channel = config.channel(channel_id)
    sender = channel.sender(sender_id) if channel is not None else None
    if channel is None or sender is None:
        return None
    shares = _quota_shares(config, channel.tenant, channel.provider)
    rate = min([sender.per_second, *(quota.per_second / senders for quota, senders in shares)])
    dailies = [quota.daily // senders for quota, senders in shares if quota.daily is not None]
    pair = config.rate_limits.pair
    return Limits(per_second=rate, burst=max(1.0, min(sender.burst, rate)),
                  pair_interval=None if pair is None else pair.per_seconds / pair.messages,
                  daily=min(dailies) if dailies else None)


def _quota_shares(config: PipelineConfig, tenant: str, provider: str) -> list[tuple[Quota, int]]:
    """The tenant's and the provider's quotas that apply, each with how many senders share it."""
    shares = []
    tenant_quota = dict(config.rate_limits.tenants).get(tenant)
    if tenant_quota is not None:
        shares.append((tenant_quota, sum(len(c.senders) for c in config.channels if c.tenant == tenant)))
    provider_quota = dict(config.rate_limits.providers).get(provider)
    if provider_quota is not None:
        shares.append((provider_quota, sum(len(c.senders) for c in config.channels if c.provider == provider)))
    return shares
