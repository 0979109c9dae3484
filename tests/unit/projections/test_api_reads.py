"""The read API's parts: percentile estimates, strict tenant prefixes, the throughput window, stores, readiness."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from projections import MemoryStore
from projections._api_follow import Follower, ReadModels, Throughput, open_read_models
from projections._api_reads import ApiError, DayRange, percentile, usage
from projections._delivery_stats import LATENCY_BUCKETS_MS
from projections._versions import ProjectionVersions
from switchboard.errors import SwitchboardError

BOUNDS = (100, 200, 400)  # buckets (0,100] (100,200] (200,400] (400,∞)


def test_a_percentile_is_interpolated_inside_its_bucket() -> None:
    counts = [0, 4, 0, 0]  # four values in (100, 200]
    assert percentile(counts, 0.5, BOUNDS) == 150.0
    assert percentile(counts, 0.25, BOUNDS) == 125.0
    assert percentile(counts, 1.0, BOUNDS) == 200.0


def test_a_percentile_walks_the_cumulative_counts() -> None:
    counts = [5, 3, 2, 0]  # rank 9 of 10 is the 1st of the 2 in (200, 400]
    assert percentile(counts, 0.5, BOUNDS) == 100.0
    assert percentile(counts, 0.9, BOUNDS) == 300.0
    assert percentile(counts, 0.99, BOUNDS) == 390.0


def test_the_open_ended_bucket_answers_its_lower_bound_and_an_empty_one_nothing() -> None:
    assert percentile([0, 0, 0, 7], 0.5, BOUNDS) == 400.0
    assert percentile([0, 0, 0, 0], 0.5, BOUNDS) is None
    assert percentile([0] * len(LATENCY_BUCKETS_MS) + [1], 0.99) == LATENCY_BUCKETS_MS[-1]


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_an_estimate_stays_inside_the_bucket_of_the_true_value(q: float) -> None:
    values = [30, 70, 120, 180, 260, 610, 900, 1400, 2200, 4800, 12_000, 70_000]
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for value in values:
        counts[next(i for i, bound in enumerate(LATENCY_BUCKETS_MS) if value <= bound)] += 1
    true = sorted(values)[max(0, int(q * len(values) + 0.999999) - 1)]
    estimate = percentile(counts, q)
    assert estimate is not None
    bucket = next(i for i, bound in enumerate(LATENCY_BUCKETS_MS) if true <= bound)
    assert (LATENCY_BUCKETS_MS[bucket - 1] if bucket else 0) <= estimate <= LATENCY_BUCKETS_MS[bucket]


def test_rows_of_a_tenant_whose_id_extends_ours_are_never_ours() -> None:
    store = MemoryStore()
    store.commit({"funnel:acme:2026-11-25:t": {"total": {}}, "funnel:acme:x:2026-11-25:t": {"total": {}},
                  "funnel:acme:2026-11-25:2026-11-25:t": {"total": {}}, "usage:acme:2026-11-25": {"u": 1},
                  "usage:acme:2026-11-25:x": {"u": 2}}, {})
    days = DayRange({"from": "2026-11-01", "to": "2026-11-30"}, date(2026, 11, 30))
    assert [(day, rest) for day, rest, _ in days.rows(store, "funnel", "acme")] == [("2026-11-25", "t")]
    assert usage(store, "acme", days)["rows"] == [{"day": "2026-11-25", "categories": {"u": 1}}]


def test_a_range_is_checked() -> None:
    with pytest.raises(ApiError, match="after"):
        DayRange({"from": "2026-11-02", "to": "2026-11-01"}, date(2026, 11, 30))
    assert "2026-11-24" in DayRange({}, date(2026, 11, 30))
    assert "2026-11-23" not in DayRange({}, date(2026, 11, 30))


def test_throughput_keeps_a_window_of_seconds_per_tenant() -> None:
    now = {"t": 1000.0}
    throughput = Throughput(keep=5, clock=lambda: now["t"])
    for second in range(10):
        now["t"] = 1000.0 + second
        throughput.add("acme", second)
    assert throughput.recent("acme", 3) == [(1007, 7), (1008, 8), (1009, 9)]
    assert throughput.recent("acme", 10)[:4] == [(1000, 0), (1001, 0), (1002, 0), (1003, 0)]  # forgotten
    assert throughput.recent("globex", 2) == [(1008, 0), (1009, 0)]


def test_the_api_opens_the_serving_versions_and_owns_them(tmp_path: Path) -> None:
    models = open_read_models(tmp_path)
    try:
        assert models.versions == {"message-status": 1, "delivery-stats": 1}
        assert ProjectionVersions(tmp_path, "delivery-stats").current() == 1
        with pytest.raises(SwitchboardError, match="one process owns"):
            open_read_models(tmp_path)
    finally:
        models.close()
    again = open_read_models(tmp_path)
    again.close()


def test_ready_means_a_recent_round_within_so_many_events() -> None:
    now = {"t": 100.0}
    follower = Follower("unused:9092", "", ReadModels(MemoryStore(), MemoryStore()), Throughput(),
                        clock=lambda: now["t"])
    assert not follower.ready(within=10, stale_after=30)  # no round yet
    follower.behind, follower.last_round = 10, 100.0
    assert follower.ready(within=10, stale_after=30)
    follower.behind = 11
    assert not follower.ready(within=10, stale_after=30)
    follower.behind, now["t"] = 0, 131.0
    assert not follower.ready(within=10, stale_after=30)  # Kafka has not answered for a while
