"""Stage metrics: a processed event counts once with its duration; a failure counts as an error only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import faust
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.observability import ConsumerLagCollector, DispatchMetrics, StageMetrics


def _value(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"stage": "demo"}) or 0.0


def test_observe_counts_events_errors_and_durations() -> None:
    registry = CollectorRegistry()
    stage = StageMetrics("demo", registry)
    with stage.observe():
        pass
    with pytest.raises(RuntimeError), stage.observe():
        raise RuntimeError("provider down")
    assert _value(registry, "switchboard_stage_events_total") == 1
    assert _value(registry, "switchboard_stage_errors_total") == 1
    assert _value(registry, "switchboard_stage_duration_seconds_count") == 1


def _lag_registry(owned: set[TP]) -> CollectorRegistry:
    monitor = SimpleNamespace(tp_read_offsets={TP("orders", 0): 9, TP("orders", 1): 4},
                              tp_end_offsets={TP("orders", 0): 10, TP("orders", 1): 12})
    consumer = SimpleNamespace(assignment=lambda: owned)
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(cast(faust.App, SimpleNamespace(monitor=monitor, consumer=consumer))))
    return registry


def test_consumer_lag_is_high_water_minus_next_offset_to_read() -> None:
    registry = _lag_registry({TP("orders", 0), TP("orders", 1)})
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "orders", "partition": "0"}) == 0
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "orders", "partition": "1"}) == 7


def test_consumer_lag_leaves_out_partitions_the_worker_lost() -> None:
    registry = _lag_registry({TP("orders", 0)})  # faust's monitor still remembers partition 1's offsets
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "orders", "partition": "0"}) == 0
    assert registry.get_sample_value("switchboard_consumer_lag", {"topic": "orders", "partition": "1"}) is None


def test_sender_gauges_of_lost_partitions_are_removed() -> None:
    registry = CollectorRegistry()
    metrics = DispatchMetrics(registry)
    metrics.sender_state("whatsapp/wa-main", 2, queued=5, circuit_open=True)
    metrics.sender_state("sms/sms-main", 4, queued=1, circuit_open=False)
    assert metrics.forget_partitions({2, 3}) == ["whatsapp/wa-main"]
    assert registry.get_sample_value("switchboard_dispatch_queued", {"sender": "whatsapp/wa-main"}) is None
    assert registry.get_sample_value("switchboard_circuit_open", {"sender": "whatsapp/wa-main"}) is None
    assert registry.get_sample_value("switchboard_dispatch_queued", {"sender": "sms/sms-main"}) == 1
