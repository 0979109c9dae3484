"""A sender's count of sends on the current UTC day."""

from __future__ import annotations

from streams.policies import DailyCount

NOON = 20_000 * 86_400 + 43_200.0  # a UTC noon


def test_a_quota_admits_its_sends_then_none_until_the_next_utc_day() -> None:
    count = DailyCount.starting(NOON)
    for _ in range(3):
        allowed, count = count.take(NOON, limit=3)
        assert allowed
    assert not count.take(NOON + 43_199, limit=3)[0]  # 23:59:59
    allowed, count = count.take(NOON + 43_200, limit=3)  # midnight
    assert allowed
    assert count.sent == 1


def test_without_a_quota_every_send_goes_and_is_counted() -> None:
    count = DailyCount.starting(NOON)
    for _ in range(5):
        allowed, count = count.take(NOON, limit=None)
        assert allowed
    assert count.sent == 5  # a quota declared later today starts from what was already sent


def test_a_clock_back_on_yesterday_keeps_todays_count() -> None:
    _, count = DailyCount.starting(NOON).take(NOON, limit=1)
    allowed, after = count.take(NOON - 86_400, limit=1)
    assert not allowed
    assert after == count
