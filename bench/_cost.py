"""Measures what a benchmark phase costs: each part's CPU and the broker's, the machine's busy cores, and the records
written to every topic of the run's prefix (event topics, commands, dispatch, webhooks, changelogs)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench._figures import BROKER, PhaseCost, busy_cores, records_written, without_prefix
from bench.pipeline_bench import machine_cpu, process_cpu

__all__ = ["PhaseMeter"]


class PhaseMeter:
    """Readings at `start` and at `stop`; `stop` returns their difference as a PhaseCost.

    `parts` are the benchmark's processes by name; `broker_pids` the broker's, or None when it runs elsewhere (its
    CPU is then not measured). Every process on the machine counts towards the busy cores.
    """

    def __init__(self, bootstrap: str, prefix: str, parts: Mapping[str, int],
                 broker_pids: Sequence[int] | None) -> None:
        self._prefix = prefix
        self._pids = dict(parts) | ({} if broker_pids is None else {f"{BROKER}:{pid}": pid for pid in broker_pids})
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._broker_measured = broker_pids is not None
        self._cpu: dict[str, float] = {}
        self._machine = (0, 0)
        self._offsets: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        await self._consumer.start()
        await self._admin.start()
        self._offsets = await self._end_offsets()
        self._cpu, self._machine = self._cpu_now(), machine_cpu()

    async def stop(self, messages: int) -> PhaseCost:
        """The phase's cost, read now (CPU first: the offsets take a few round trips)."""
        cpu, machine = self._cpu_now(), machine_cpu()
        try:
            offsets = await self._end_offsets()
        finally:
            await self._consumer.stop()
            await self._admin.close()
        cores = os.cpu_count() or 1
        return PhaseCost(messages, self._cpu_spent(cpu), cores, busy_cores(self._machine, machine, cores),
                         without_prefix(records_written(self._offsets, offsets), self._prefix))

    def _cpu_now(self) -> dict[str, float]:
        return {name: process_cpu(pid) for name, pid in self._pids.items()}

    def _cpu_spent(self, now: Mapping[str, float]) -> dict[str, float]:
        """Seconds per part, the broker's nodes summed under one name."""
        spent: dict[str, float] = {BROKER: 0.0} if self._broker_measured else {}
        for name, seconds in now.items():
            key = BROKER if name.startswith(f"{BROKER}:") else name
            spent[key] = spent.get(key, 0.0) + seconds - self._cpu[name]
        return spent

    async def _end_offsets(self) -> dict[tuple[str, int], int]:
        names = [topic for topic in await self._admin.list_topics() if topic.startswith(self._prefix)]
        partitions = [TopicPartition(d["topic"], p["partition"]) for d in await self._admin.describe_topics(names)
                      for p in d["partitions"]]
        ends = await self._consumer.end_offsets(partitions) if partitions else {}
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}
