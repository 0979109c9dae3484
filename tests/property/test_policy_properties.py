"""Properties of the rate limiter and quiet hours that must hold for every input."""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policies import QuietHours, SendWindow, TokenBucket

gaps = st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(min_value=0.5, max_value=1000), burst=st.integers(min_value=1, max_value=100), gaps=gaps)
def test_bucket_never_admits_more_than_rate_times_time_plus_burst(rate: float, burst: int, gaps: list[float]) -> None:
    bucket, now, admitted = TokenBucket.full(rate, burst, now=0.0), 0.0, 0
    for gap in gaps:
        now += gap
        allowed, bucket = bucket.take(now)
        admitted += allowed
    assert admitted <= rate * now + burst + 1e-6


hours = st.integers(min_value=0, max_value=23)
zones = st.sampled_from(["UTC", "America/Sao_Paulo", "Asia/Kolkata", "Europe/Berlin", "Pacific/Auckland"])
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(start=hours, end=hours, zone=zones, at=instants)
def test_quiet_hours_end_is_the_first_non_quiet_instant(start: int, end: int, zone: str, at: datetime) -> None:
    if start == end:
        return
    quiet = QuietHours(time(start), time(end), zone)
    ends = quiet.ends_after(at)
    assert ends >= at
    assert not quiet.is_quiet(ends)
    if ends > at:
        assert quiet.is_quiet(ends - timedelta(seconds=1))


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(min_value=1, max_value=200), gaps=gaps, tries=st.lists(st.integers(1, 50), min_size=300,
                                                                              max_size=300))
def test_no_second_anywhere_holds_more_sends_than_the_window_allows(rate: int, gaps: list[float],
                                                                     tries: list[int]) -> None:
    window, now, sent_at = SendWindow.empty(rate, now=0.0), 0.0, []
    for gap, attempts in zip(gaps, tries, strict=False):
        now += gap
        for _ in range(attempts):
            allowed, window = window.take(now)
            sent_at += [now] if allowed else []
    # The busiest closed second [start, start + 1] can be taken to begin at a send; `sent_at` is in time order.
    assert all(bisect_right(sent_at, start + 1) - first <= rate for first, start in enumerate(sent_at))


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(min_value=1, max_value=100), rounds=st.lists(
    st.tuples(st.integers(1, 150), st.floats(0, 2.5), st.floats(0, 0.5), st.randoms()), min_size=1, max_size=60))
def test_sends_arriving_any_time_before_their_answer_never_crowd_a_second(
        rate: int, rounds: list[tuple[int, float, float, random.Random]]) -> None:
    # As the dispatcher sends: a batch goes at `now`, its sends reach the provider in any order before the last
    # answer, and the next batch is planned after that.
    window, now, arrivals = SendWindow.empty(rate, now=0.0), 0.0, []
    for attempts, latency, pause, rng in rounds:
        admitted = 0
        for _ in range(attempts):
            allowed, window = window.take(now)
            admitted += allowed
        arrivals += [now + rng.uniform(0, latency) for _ in range(admitted)]
        for _ in range(admitted):
            window = window.recounted(made_at=now, settled_at=now + latency)
        now += latency + pause
    arrivals.sort()
    assert all(bisect_right(arrivals, start + 1) - first <= rate for first, start in enumerate(arrivals))
