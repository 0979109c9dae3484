"""The template writer's faust batch: template commands in, Template events out and awaited, then the rows written."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT

from aggregates import to_record
from schemas import encode, route
from streams.observability import StageMetrics
from streams.pipeline._commands import CommandError
from streams.pipeline._fence import Fence
from streams.pipeline._guard import ClusterIdentity, is_redelivery, mark_applied
from streams.pipeline._runtime import _as_current
from streams.pipeline._templates import (
    TemplateEffects,
    TemplateRow,
    TemplateTopics,
    TemplateWriter,
    check_template_command,
)

__all__ = ["TemplateAgent"]

_log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """Rows touched by one batch: each row, its pickled image and an event of its partition; outputs in flight."""

    rows: dict[str, tuple[TemplateRow, bytes, EventT[Any]]] = field(default_factory=dict)
    pending: list[Awaitable[Any]] = field(default_factory=list)


class TemplateAgent:
    """The template writer on one worker: the `templates` table, keyed by Template aggregate id, and its outputs."""

    def __init__(self, app: faust.App, prefix: str, deadletters: str, table: Any, metrics: StageMetrics,
                 cluster: ClusterIdentity, fence: Fence) -> None:
        self.app, self.topics, self.deadletters, self.cluster = app, TemplateTopics(prefix), deadletters, cluster
        self.table, self.metrics, self.fence = table, metrics, fence
        self.writer = TemplateWriter()

    async def batch(self, events: Sequence[EventT[Any]]) -> None:
        """Applies a batch; its events and dead letters are acknowledged before any row says they were made.

        Fenced like the contact writer (`_fence.py`): a worker expelled from the group mid-batch applies no further
        record and writes no row, since the partitions' new owner restored the rows and applies these records itself.
        """
        generation = await self.fence.begin("templates")
        if generation is None:
            return
        batch = _Batch()
        for event in events:
            if not await self.fence.holds(generation, "templates"):
                break
            with self.metrics.observe():
                await self._one(event, batch)
        await asyncio.gather(*batch.pending)  # what was sent has the same ids as the new owner's: consumers dedupe
        if not await self.fence.holds(generation, "templates"):
            return
        for key, (_, image, event) in batch.rows.items():
            _as_current(event)  # faust writes a key's changelog to the partition of the current event
            self.table[key] = image  # already pickled: the state codec passes bytes through

    async def _one(self, event: EventT[Any], batch: _Batch) -> None:
        _as_current(event)
        key = event.key if isinstance(event.key, str) else None
        try:
            command = check_template_command(event.value)
            if key != command["aggregate_id"]:
                raise CommandError(f"a template command is keyed by its aggregate_id, not {key!r}")
        except CommandError as error:
            await self._dead_letter(key, {"stage": "templates", "reason": str(error),
                                          "record": _printable(event.value)}, batch)
            return
        assert key is not None
        row = self._row(key, batch)
        cluster = await self.cluster.id()
        if is_redelivery(row, event.message.offset, cluster):
            return  # a redelivery: the row was written only after this record's outputs were durable
        effects = self._handle(key, row, command, batch)
        row = effects.row
        mark_applied(row, event.message.offset, cluster)
        batch.rows[key] = (row, pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL), event)
        await self._ship(key, effects.effects, batch)

    def _handle(self, key: str, row: TemplateRow, command: dict[str, Any], batch: _Batch) -> _Handled:
        try:
            return _Handled(row, self.writer.handle(row, command))
        except Exception as error:  # a bug must not stop the partition; the row goes back to before the command
            _log.exception("template writer failed on a %s command", command.get("kind"))
            restored = self._row(key, batch, fresh=True)
            letter = {"stage": "templates", "reason": f"{type(error).__name__}: {error}", "command": command}
            return _Handled(restored, TemplateEffects(restored.template, dead_letters=[letter]))

    def _row(self, key: str, batch: _Batch, fresh: bool = False) -> TemplateRow:
        if key in batch.rows:
            row, image, _ = batch.rows[key]
            return pickle.loads(image) if fresh else row
        stored = self.table.get(key)  # decoded from the store on every read: a fresh copy
        return stored if isinstance(stored, TemplateRow) else TemplateRow()

    async def _ship(self, key: str, effects: TemplateEffects, batch: _Batch) -> None:
        for emitted in effects.events:
            assert effects.template is not None
            record = to_record(effects.template, emitted)
            where = route(record.event_type, record.event)  # sb.events.template, keyed by the aggregate id
            batch.pending.append(await self._produce(self.topics.prefix + where.topic, where.key,
                                                     encode(record.event, record.event_type)))
        for letter in effects.dead_letters:
            await self._dead_letter(key, letter, batch)

    async def _dead_letter(self, key: str | None, letter: dict[str, Any], batch: _Batch) -> None:
        letter = {"worker": os.environ.get("SWITCHBOARD_WORKER", ""), "at": time.time(), **letter}
        value = json.dumps(letter, separators=(",", ":"), default=str).encode()
        batch.pending.append(await self._produce(self.deadletters, key, value))

    async def _produce(self, topic: str, key: str | None, value: bytes) -> Awaitable[Any]:
        return await self.app.producer.send(topic, None if key is None else key.encode(), value, None, None, None)


@dataclass
class _Handled:
    """The row after a command (restored if the writer raised) and what the command produced."""

    row: TemplateRow
    effects: TemplateEffects


def _printable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):  # a raw record that is not a command: its JSON, else its text
        try:
            return json.loads(value)
        except ValueError:
            return bytes(value[:2000]).decode(errors="replace")
    return value if isinstance(value, dict | list | str | int | float) or value is None else repr(value)[:2000]
