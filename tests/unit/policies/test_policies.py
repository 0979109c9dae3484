"""The pure pipeline policies: token buckets, backoff, quiet hours and CEL conditions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from streams.policies import Condition, ConditionError, QuietHours, RetryPolicy, TokenBucket


def test_bucket_allows_its_burst_then_refuses_until_refilled() -> None:
    bucket = TokenBucket.full(rate=80, burst=80, now=0.0)
    for _ in range(80):
        allowed, bucket = bucket.take(now=0.0)
        assert allowed
    allowed, bucket = bucket.take(now=0.0)
    assert not allowed
    assert bucket.wait_time(now=0.0) == pytest.approx(1 / 80)
    allowed, _ = bucket.take(now=1 / 80)
    assert allowed


def test_bucket_ignores_a_clock_that_goes_backwards() -> None:
    _, bucket = TokenBucket.full(rate=1, burst=1, now=10.0).take(now=10.0)
    allowed, after = bucket.take(now=5.0)
    assert not allowed
    assert after.updated_at == 10.0


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket.full(rate=0, burst=10, now=0)


def test_backoff_grows_to_its_cap_with_jitter_below_the_ceiling() -> None:
    policy = RetryPolicy(max_attempts=6, base_seconds=1, factor=2, cap_seconds=10)
    assert [policy.ceiling(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    rng = random.Random(1)
    assert all(0 <= policy.delay(n, rng) <= policy.ceiling(n) for n in range(1, 7) for _ in range(50))
    assert not policy.exhausted(5)
    assert policy.exhausted(6)


def test_quiet_hours_across_midnight_in_the_recipients_zone() -> None:
    quiet = QuietHours(start=time(22), end=time(7), timezone="America/Sao_Paulo")  # UTC-3
    assert quiet.is_quiet(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))  # 23:00 local
    assert not quiet.is_quiet(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))  # 12:00 local
    ends = quiet.ends_after(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    assert ends == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # 07:00 local
    assert not quiet.is_quiet(ends)
    assert quiet.is_quiet(ends - timedelta(minutes=1))


def test_quiet_hours_reject_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        QuietHours(start=time(22), end=time(7), timezone="Mars/Olympus_Mons")


def test_cel_condition_on_event_fields() -> None:
    vip = Condition.compile('event.total_cents > 100000 && "vip" in recipient.tags')
    assert vip.matches({"event": {"total_cents": 150000}, "recipient": {"tags": ["vip"]}})
    assert not vip.matches({"event": {"total_cents": 150000}, "recipient": {"tags": []}})


@pytest.mark.parametrize(
    ("source", "variables", "message"),
    [
        ("event.total >", {}, "does not compile"),
        ("event.missing > 1", {"event": {}}, "failed"),
        ("event.total + 1", {"event": {"total": 1}}, "not true or false"),
    ],
)
def test_bad_conditions_are_errors_not_crashes(source: str, variables: dict[str, object], message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        Condition.compile(source).matches(variables)
