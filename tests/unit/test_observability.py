"""Stage metrics: a processed event counts once with its duration; a failure counts as an error only."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.observability import StageMetrics


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
