"""Delivery lanes: one per (URL, message), so a message's callbacks go out in log order whatever batch they came in."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from connectors._feeder_events import FeederStats, RecentMap
from connectors._feeder_secrets import secret_env_var
from connectors._privacy import Secret
from connectors.callbacks import (
    CallbackDispatcher,
    CallbackEvent,
    CallbackTarget,
    DeadLetter,
    DeadLetterCause,
    DeadLetterSink,
)

__all__ = ["INVALID_CALLBACK_URL", "NO_SIGNING_SECRET", "DeliveryLanes", "Lane", "SecretLookup"]

log = logging.getLogger(__name__)

NO_SIGNING_SECRET = "no_signing_secret"
INVALID_CALLBACK_URL = "invalid_callback_url"

Lane = tuple[str, str]  # (callback URL, message id)
SecretLookup = Callable[[str], Secret | None]


class DeliveryLanes:
    """Runs each event after every earlier event of its lane, and keeps the dispatcher's rule across calls.

    `CallbackDispatcher.deliver` dead-letters the rest of a batch once an event is given up; events arrive here
    one record at a time, so the lane remembers (bounded by `memory`) which messages were given up and
    dead-letters their later events as skipped instead of sending them. Without a signing secret nothing is sent:
    the event is dead-lettered with reason `no_signing_secret` (the tenant is logged once).
    """

    def __init__(self, dispatcher: CallbackDispatcher, dead_letters: DeadLetterSink, secrets: SecretLookup, *,
                 memory: int = 100_000, stats: FeederStats | None = None) -> None:
        self._dispatcher = dispatcher
        self._dead_letters = dead_letters
        self._secrets = secrets
        self._tails: dict[Lane, asyncio.Task[None]] = {}
        self._given_up: RecentMap[Lane, str] = RecentMap(memory)
        self._warned: set[str] = set()
        self.stats = stats if stats is not None else FeederStats()

    def submit(self, url: str, event: CallbackEvent) -> asyncio.Task[None]:
        """Schedules the event behind its lane; the task ends when it is delivered or dead-lettered."""
        lane = (url, event.message_id)
        task = asyncio.create_task(self._after(self._tails.get(lane), lane, event), name=f"callback {event.event_id}")
        self._tails[lane] = task
        task.add_done_callback(functools.partial(self._release, lane))
        return task

    def given_up(self, url: str, message_id: str) -> bool:
        """Whether an event of this message was dead-lettered for this URL (so later ones are not sent)."""
        return (url, message_id) in self._given_up

    async def _after(self, previous: asyncio.Task[None] | None, lane: Lane, event: CallbackEvent) -> None:
        if previous is not None:
            # shielded: cancelling this task must not cancel the earlier one; if that one fails or is cancelled,
            # this one ends the same way, since sending it would break the order
            await asyncio.shield(previous)
        await self._deliver(lane, event)

    async def _deliver(self, lane: Lane, event: CallbackEvent) -> None:
        target = self._target(lane, event)
        if isinstance(target, DeadLetter):
            await self._give_up(lane, target)
            return
        report = await self._dispatcher.deliver(target, [event])
        self.stats.delivered += len(report.delivered)
        self.stats.dead_lettered += len(report.dead_letters)
        self.stats.retries += report.requests - len(report.delivered) - len(report.dead_letters)
        if not report.complete:
            self._given_up.put(lane, event.event_id)

    def _target(self, lane: Lane, event: CallbackEvent) -> CallbackTarget | DeadLetter:
        """Where to send the event, or the dead letter it becomes without being sent."""
        url = lane[0]
        secret = self._secrets(event.tenant_id)
        if secret is None:  # checked first: the reason must name what the operator has to fix
            self._warn_once(event.tenant_id)
            return DeadLetter(url, event, DeadLetterCause.UNSENDABLE, NO_SIGNING_SECRET, 0)
        earlier = self._given_up.get(lane)
        if earlier is not None:
            return DeadLetter(url, event, DeadLetterCause.SKIPPED,
                              f"not sent: earlier event {earlier} was dead-lettered", 0)
        try:
            return CallbackTarget(url, secret)
        except ValueError:
            return DeadLetter(url, event, DeadLetterCause.UNSENDABLE, INVALID_CALLBACK_URL, 0)

    async def _give_up(self, lane: Lane, letter: DeadLetter) -> None:
        await self._dead_letters.put(letter)
        self.stats.dead_lettered += 1
        if lane not in self._given_up:
            self._given_up.put(lane, letter.event.event_id)

    def _warn_once(self, tenant_id: str) -> None:
        if tenant_id not in self._warned:
            self._warned.add(tenant_id)
            log.warning("tenant %s has a status callback URL but no signing secret (set %s or put it in "
                        "<secrets-dir>/callbacks/%s): its events are dead-lettered as %s, never sent unsigned",
                        tenant_id, secret_env_var(tenant_id), tenant_id, NO_SIGNING_SECRET)

    def _release(self, lane: Lane, task: asyncio.Task[None]) -> None:
        if self._tails.get(lane) is task:
            del self._tails[lane]
