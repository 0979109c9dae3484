"""The sliding send window: a provider's rate per second, held in every second however it is placed."""

from __future__ import annotations

import pytest

from streams.policies import SendWindow, TokenBucket


def sends_admitted(window: SendWindow, at: float, tries: int) -> tuple[int, SendWindow]:
    admitted = 0
    for _ in range(tries):
        allowed, window = window.take(at)
        admitted += allowed
    return admitted, window


def test_a_full_bucket_and_its_refill_reach_twice_the_rate_within_one_second() -> None:
    # Why the window exists: the bucket alone, full at 0.0, admits its burst at once and a second's refill by 0.99.
    bucket, admitted = TokenBucket.full(rate=100, burst=100, now=0.0), 0
    for step in range(100):
        for _ in range(100 if step == 0 else 1):
            allowed, bucket = bucket.take(now=step / 100)
            admitted += allowed
    assert admitted == 199


def test_the_window_admits_its_limit_then_nothing_until_a_second_after_the_first_send() -> None:
    admitted, window = sends_admitted(SendWindow.empty(100, now=0.0), at=0.0, tries=150)
    assert admitted == 100
    assert sends_admitted(window, at=0.99, tries=1)[0] == 0
    assert sends_admitted(window, at=1.0, tries=1)[0] == 0  # the slice [0.0, 0.05) is still in the second
    assert sends_admitted(window, at=1.05, tries=150)[0] == 100


def test_sends_spread_over_a_second_free_their_slices_one_by_one() -> None:
    window = SendWindow.empty(20, now=0.0)
    for slice_start in range(20):
        allowed, window = window.take(slice_start / 20)
        assert allowed
    assert not window.take(0.999)[0]
    allowed, window = window.take(1.05)  # the send at 0.0 has left the window; only one place is free
    assert allowed
    assert not window.take(1.05)[0]


def test_a_clock_that_goes_backwards_counts_into_the_newest_slice() -> None:
    _, window = sends_admitted(SendWindow.empty(2, now=10.0), at=10.0, tries=1)
    allowed, window = window.take(now=3.0)
    assert allowed
    assert window.counts[-1] == 2
    assert window.newest == SendWindow.empty(2, now=10.0).newest


def test_a_long_pause_empties_the_window_and_the_sends_after_it_count_in_full() -> None:
    _, window = sends_admitted(SendWindow.empty(5, now=0.0), at=0.0, tries=5)
    assert window.moved_to(3600.0).sent == 0
    admitted, window = sends_admitted(window, at=3600.0, tries=5)
    assert admitted == 5
    assert sends_admitted(window, at=3600.5, tries=1)[0] == 0


def test_rates_under_one_a_second_still_admit_one_send_and_a_new_rate_keeps_the_sends() -> None:
    assert SendWindow.empty(0.2, now=0.0).limit == 1
    assert SendWindow.empty(1000.0, now=0.0).limit == 1000
    _, window = sends_admitted(SendWindow.empty(5, now=0.0), at=0.0, tries=5)
    lowered = window.with_limit(3)
    assert (lowered.limit, lowered.sent) == (3, 5)
    assert not lowered.take(0.5)[0]


def test_the_window_rejects_a_rate_of_nothing() -> None:
    with pytest.raises(ValueError, match="per_second > 0"):
        SendWindow.empty(0, now=0.0)


def test_a_send_answered_late_counts_from_its_answer_not_from_when_it_was_made() -> None:
    _, window = SendWindow.empty(1, now=0.0).take(0.0)
    window = window.recounted(made_at=0.0, settled_at=0.9)  # it may have reached the provider as late as 0.9
    assert window.sent == 1
    assert not window.take(1.05)[0]  # counted from 0.0 it would have gone
    assert window.take(1.95)[0]


def test_a_send_answered_in_its_own_slice_or_after_its_count_left_is_counted_once() -> None:
    _, window = SendWindow.empty(5, now=0.0).take(0.0)
    assert window.recounted(made_at=0.0, settled_at=0.01).sent == 1
    assert window.recounted(made_at=0.0, settled_at=5.0).counts[-1] == 1
    assert window.recounted(made_at=0.0, settled_at=5.0).sent == 1
