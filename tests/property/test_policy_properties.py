"""Properties of the rate limiter and quiet hours that must hold for every input."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policies import QuietHours, TokenBucket

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
