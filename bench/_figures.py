"""The arithmetic of what a measured phase cost: CPU per message, cores busy, Kafka records per message, ceilings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BROKER", "TARGET_RATE", "PhaseCost", "budget_ms", "busy_cores", "kafka_ceiling", "records_written",
           "without_prefix"]

TARGET_RATE = 1000  # messages/s end to end with every receipt: issue 8's target
BROKER = "broker"  # the name the broker's CPU is filed under, beside the parts'

Offsets = Mapping[tuple[str, int], int]  # (topic, partition) -> end offset


def busy_cores(before: tuple[int, int], after: tuple[int, int], cores: int) -> float:
    """Cores busy on average between two (busy, total) jiffy readings of /proc/stat's all-cores line."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return cores * busy / total if total > 0 else 0.0


def budget_ms(cores: int, rate: float = TARGET_RATE) -> float:
    """The CPU milliseconds one message may cost in all (every process, the broker too) for `cores` to carry
    `rate` messages/s."""
    return cores * 1000 / rate


def records_written(before: Offsets, after: Offsets) -> dict[str, int]:
    """Records appended per topic between two end-offset snapshots; a partition missing from `before` (its topic
    was created during the phase) counts from 0."""
    written: dict[str, int] = {}
    for (topic, partition), end in after.items():
        written[topic] = written.get(topic, 0) + end - before.get((topic, partition), 0)
    return written


def without_prefix(written: Mapping[str, int], prefix: str) -> dict[str, int]:
    """Topic names without the run's prefix, which faust's changelogs carry twice (app id, then table name)."""
    return {topic.replace(prefix, ""): count for topic, count in written.items()}


def kafka_ceiling(raw_records_per_second: float, records_per_message: float) -> float:
    """Messages/s if the Kafka client work alone bounded them: each record written costs about what one record of
    the raw consume -> produce loop does (produced once, consumed by the next stage; changelogs only on recovery)."""
    return raw_records_per_second / records_per_message if records_per_message > 0 else math.nan


@dataclass(frozen=True)
class PhaseCost:
    """What one phase of `messages` messages cost the machine and the broker."""

    messages: int
    cpu: Mapping[str, float]  # CPU seconds per process; the broker's under BROKER when it was measured
    cores: int
    busy: float  # cores busy on average over the phase, every process on the machine counted
    records: Mapping[str, int] = field(default_factory=dict)  # records written per topic, the run's prefix removed

    @property
    def broker_measured(self) -> bool:
        return BROKER in self.cpu

    def cpu_ms(self) -> dict[str, float]:
        """CPU milliseconds per message, per process."""
        return {name: _per(1000 * seconds, self.messages) for name, seconds in self.cpu.items()}

    @property
    def total_cpu_ms(self) -> float:
        """CPU milliseconds per message of every measured process together."""
        return _per(1000 * sum(self.cpu.values()), self.messages)

    @property
    def budget_ms(self) -> float:
        return budget_ms(self.cores)

    @property
    def records_per_message(self) -> float:
        return _per(sum(self.records.values()), self.messages)

    def records_line(self) -> str:
        """Records per message overall, then per topic, the largest first: `9.02 (sb.commands 3.01, ...)`."""
        ranked = sorted(self.records.items(), key=lambda item: (-item[1], item[0]))
        topics = ", ".join(f"{topic} {_per(count, self.messages):.2f}" for topic, count in ranked if count)
        return f"{self.records_per_message:.2f} ({topics})"

    def cpu_line(self) -> str:
        """CPU ms per message per process, the total and the budget: `pipeline-1 2.70, ...; total 6.1 of 2.00`."""
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(self.cpu_ms().items()))
        broker = "" if self.broker_measured else " (broker not measured)"
        return (f"{parts}; total {self.total_cpu_ms:.2f}{broker}; budget at {TARGET_RATE:,} msg/s on {self.cores} "
                f"cores {self.budget_ms:.2f}")

    def busy_line(self) -> str:
        return f"{self.busy:.2f} of {self.cores} cores"


def _per(amount: float, messages: int) -> float:
    return amount / messages if messages > 0 else math.nan
