"""The template writer's batch is fenced like the contact writer's: an expelled worker writes no row."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from streams.observability import StageMetrics
from streams.pipeline._fence import NO_GENERATION, Fence
from streams.pipeline._template_agent import TemplateAgent
from streams.pipeline._templates import TemplateRow
from tests.unit.pipeline.test_templates import TEMPLATE_ID, status, version


@dataclass
class _Producer:
    """faust's producer as the agent uses it: every record handed to it is acknowledged at once."""

    sent: list[tuple[str, bytes | None]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes, *_: Any) -> asyncio.Future[None]:
        self.sent.append((topic, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Cluster:
    async def id(self) -> str:
        return "cluster-1"


class _Group:
    """The consumer's generation; the coordinator may expel the member after a given number of records."""

    def __init__(self, expel_after: int | None) -> None:
        self.generation, self.records, self.expel_after = 4, 0, expel_after

    def fence(self) -> Fence:
        return Fence(lambda: self.generation, lambda: "me", self._members)

    async def _members(self) -> set[str]:
        return {"other"}  # asked only once the generation changed: another member holds the partitions now

    def applied(self) -> None:
        self.records += 1
        if self.records == self.expel_after:
            self.generation = NO_GENERATION  # the client heard of its expulsion from a heartbeat's answer


class _Event(SimpleNamespace):
    """A record as faust hands it over (weakly referenced as the current event, hence a class of its own)."""


def _events(commands: list[dict[str, Any]]) -> list[Any]:
    return [_Event(key=TEMPLATE_ID, value=json.dumps(c).encode(),
                   message=SimpleNamespace(offset=n, partition=0, timestamp=0.0, headers=[]))
            for n, c in enumerate(commands)]


def _agent(group: _Group, table: dict[str, Any]) -> tuple[TemplateAgent, _Producer]:
    producer = _Producer()
    app = SimpleNamespace(producer=producer)
    metrics = StageMetrics("templates", CollectorRegistry())
    agent = TemplateAgent(app, "t-", "t-sb.deadletters", table, metrics, _Cluster(), group.fence())  # type: ignore[arg-type]
    original = agent._one

    async def counted(event: Any, batch: Any) -> None:
        await original(event, batch)
        group.applied()

    agent._one = counted  # type: ignore[method-assign]
    return agent, producer


async def test_a_batch_of_a_member_writes_its_row() -> None:
    table: dict[str, Any] = {}
    agent, producer = _agent(_Group(expel_after=None), table)
    await agent.batch(_events([version(), status("APPROVED")]))
    assert set(table) == {TEMPLATE_ID}
    assert len(producer.sent) == 3  # registered, version published, approved


async def test_a_worker_expelled_mid_batch_applies_no_further_record_and_writes_no_row() -> None:
    table: dict[str, Any] = {}
    agent, producer = _agent(_Group(expel_after=1), table)
    await agent.batch(_events([version(), status("APPROVED")]))
    assert table == {}  # the new owner restored the row without this batch and applies both records itself
    assert len(producer.sent) == 2  # the first record's events only (same ids as the new owner's: deduplicated)


async def test_a_worker_expelled_before_the_batch_skips_it_whole() -> None:
    table: dict[str, Any] = {TEMPLATE_ID: TemplateRow()}
    group = _Group(expel_after=None)
    group.generation = NO_GENERATION
    agent, producer = _agent(group, table)
    await agent.batch(_events([version()]))
    assert producer.sent == []
    assert isinstance(table[TEMPLATE_ID], TemplateRow)
