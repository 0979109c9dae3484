"""The dispatcher's decisions for one sender: lanes, its token bucket, the pair limit, the circuit, lost attempts."""

from __future__ import annotations

import pickle
from typing import Any

from connectors import Outcome, ProviderError, SendResult
from streams.pipeline import BreakerSettings, Dispatcher, Limits, SenderState

FAST = Limits(per_second=1000, burst=1000)


def job(n: int, priority: str = "normal", address: str | None = None, attempt: int = 1) -> dict[str, Any]:
    return {"kind": "send", "message_id": f"m-{n}", "contact_id": f"c-{n}", "tenant": "acme", "attempt": attempt,
            "channel": "whatsapp", "sender": "wa-main", "address": address or f"+49170{n:07d}",
            "content": {"type": "text", "body": "hi"}, "priority": priority}


def result(sent: dict[str, Any], outcome: Outcome = Outcome.ACCEPTED) -> SendResult:
    error = None if outcome is Outcome.ACCEPTED else ProviderError("131000", "boom")
    return SendResult(outcome, sent["message_id"], provider_message_id="wamid.x", error=error)


def never(_: str) -> bool:
    return False


def test_high_priority_goes_before_a_backlog() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    for n in range(5):
        dispatcher.admit(state, job(n, "low"), never)
    dispatcher.admit(state, job(99, "high"), never)
    sending, _ = dispatcher.ready(state, Limits(per_second=2, burst=2), now=0.0)
    assert [j["message_id"] for j in sending] == ["m-99", "m-0"]


def test_the_bucket_refills_at_its_rate() -> None:
    dispatcher, state, limits = Dispatcher(), SenderState(), Limits(per_second=10, burst=1)
    for n in range(10):
        dispatcher.admit(state, job(n), never)
    counts = [len(dispatcher.ready(state, limits, now=t / 10)[0]) for t in range(10)]
    assert counts == [1] * 10


def test_a_full_bucket_and_its_refill_never_put_more_than_the_rate_in_one_second() -> None:
    # Seen in the benchmark before the window: the simulator refused 220 of 5,520 sends with 130429.
    dispatcher, state, limits = Dispatcher(), SenderState(), Limits(per_second=100, burst=100)
    for n in range(400):
        dispatcher.admit(state, job(n), never)
    counts = [len(dispatcher.ready(state, limits, now=t / 100)[0]) for t in range(0, 300, 5)]
    per_second = [sum(counts[start:start + 20]) for start in range(len(counts) - 19)]  # each second's 20 steps
    assert counts[0] == 100
    assert max(per_second) == 100
    assert sum(counts) >= 270  # the window costs a slice of each second, not more
    assert dispatcher.throttles > 0


def test_a_row_pickled_before_the_send_window_and_the_daily_count_reads_as_having_sent_nothing() -> None:
    state = SenderState()
    del state.__dict__["window"], state.__dict__["today"]  # as a row written by the previous release restores
    restored = pickle.loads(pickle.dumps(state))
    restored.lanes[1].append(job(1))
    assert len(Dispatcher().ready(restored, FAST, now=0.0)[0]) == 1
    assert restored.window is not None
    assert restored.window.sent == 1


def test_a_lowered_rate_applies_to_the_sends_already_in_the_window() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    for n in range(20):
        dispatcher.admit(state, job(n), never)
    assert len(dispatcher.ready(state, Limits(per_second=10, burst=10), now=0.0)[0]) == 10
    assert dispatcher.ready(state, Limits(per_second=5, burst=5), now=0.6)[0] == []
    assert len(dispatcher.ready(state, Limits(per_second=5, burst=5), now=1.1)[0]) == 5


def test_a_spent_daily_share_holds_the_senders_jobs_until_the_next_utc_day() -> None:
    dispatcher, state, limits = Dispatcher(), SenderState(), Limits(per_second=1000, burst=1000, daily=3)
    for n in range(5):
        dispatcher.admit(state, job(n), never)
    noon = 20_000 * 86_400 + 43_200.0
    assert [j["message_id"] for j in dispatcher.ready(state, limits, now=noon)[0]] == ["m-0", "m-1", "m-2"]
    assert dispatcher.ready(state, limits, now=noon + 43_199)[0] == []
    assert dispatcher.throttles == 2
    assert [j["message_id"] for j in dispatcher.ready(state, limits, now=noon + 43_200)[0]] == ["m-3", "m-4"]


def test_a_send_refused_by_one_limit_takes_nothing_from_the_others() -> None:
    dispatcher, state, limits = Dispatcher(), SenderState(), Limits(per_second=2, burst=2, daily=5)
    for n in range(3):
        dispatcher.admit(state, job(n), never)
    assert len(dispatcher.ready(state, limits, now=0.0)[0]) == 2
    assert dispatcher.ready(state, limits, now=0.0)[0] == []  # the bucket is empty: the day's count stays at 2
    assert state.today is not None
    assert state.today.sent == 2


def test_the_pair_limit_holds_one_recipient_and_lets_others_pass() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    limits = Limits(per_second=1000, burst=1000, pair_interval=6.0)
    for n, address in enumerate(["+1", "+1", "+2"]):
        dispatcher.admit(state, job(n, address=address), never)
    assert [j["message_id"] for j in dispatcher.ready(state, limits, now=0.0)[0]] == ["m-0", "m-2"]
    assert dispatcher.ready(state, limits, now=5.9)[0] == []
    assert [j["message_id"] for j in dispatcher.ready(state, limits, now=6.0)[0]] == ["m-1"]


def test_a_settled_or_queued_job_is_not_admitted_twice() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    dispatcher.admit(state, job(1), never)
    dispatcher.admit(state, job(1), never)
    assert state.queued == 1
    [sent], _ = dispatcher.ready(state, FAST, now=0.0)
    dispatcher.settle(state, sent, result(sent), now=0.1)
    assert dispatcher.admit(state, job(1), never) is None
    assert dispatcher.admit(SenderState(), job(1), lambda key: key == "m-1:1") is None


def test_a_job_in_flight_in_a_dead_worker_is_reported_unknown_not_resent() -> None:
    dead, state = Dispatcher(), SenderState()
    dead.admit(state, job(1), never)
    dead.ready(state, FAST, now=0.0)
    heir = Dispatcher()
    [lost] = heir.orphans(state)
    assert (lost["message_id"], lost["outcome"]) == ("m-1", "unknown")
    assert heir.ready(state, FAST, now=1.0)[0] == []
    assert not state.inflight


def test_a_mark_left_by_a_batch_expelled_from_the_group_is_an_orphan_when_the_partition_comes_back() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    dispatcher.admit(state, job(1), never)
    dispatcher.ready(state, FAST, now=0.0)  # marked, sent; the settlement was never written (the fence held it)
    assert dispatcher.orphans(state) == []  # while this worker keeps its partitions, the call is its own
    dispatcher.new_incarnation()  # the rebalance that took the partition away, and later gave it back
    [lost] = dispatcher.orphans(state)
    assert (lost["message_id"], lost["attempt"], lost["outcome"]) == ("m-1", 1, "unknown")
    assert not state.inflight


def test_the_circuit_opens_sheds_and_closes_after_a_probe() -> None:
    settings = BreakerSettings(window=4, min_calls=4, error_rate=0.5, open_seconds=10)
    dispatcher, state = Dispatcher(lambda: settings), SenderState()
    for n in range(4):
        dispatcher.admit(state, job(n), never)
    for sent in dispatcher.ready(state, FAST, now=0.0)[0]:
        dispatcher.settle(state, sent, result(sent, Outcome.RETRY_LATER), now=0.0)
    assert state.breaker.state(1.0) == "open"
    dispatcher.admit(state, job(10), never)
    dispatcher.admit(state, job(11, "low"), never)
    sending, refused = dispatcher.ready(state, FAST, now=1.0)
    assert sending == []
    assert [r["outcome"] for r in refused] == ["circuit_open"]
    [probe], _ = dispatcher.ready(state, FAST, now=10.0)
    assert probe["message_id"] == "m-11"  # the low-priority job waited and is the probe
    dispatcher.settle(state, probe, result(probe), now=10.1)
    assert state.breaker.state(10.2) == "closed"


def test_a_failed_probe_opens_the_circuit_again() -> None:
    settings = BreakerSettings(window=2, min_calls=2, error_rate=0.5, open_seconds=5)
    dispatcher, state = Dispatcher(lambda: settings), SenderState()
    state.breaker.open_until = 5.0
    dispatcher.admit(state, job(1, "low"), never)
    [probe], _ = dispatcher.ready(state, FAST, now=5.0)
    dispatcher.settle(state, probe, result(probe, Outcome.RETRY_LATER), now=5.0)
    assert state.breaker.state(9.0) == "open"
    assert state.breaker.state(10.0) == "half_open"


def test_throttles_pause_the_sender_and_never_open_the_circuit() -> None:
    settings = BreakerSettings(window=4, min_calls=4, error_rate=0.5, open_seconds=10)
    dispatcher, state, limits = Dispatcher(lambda: settings), SenderState(), Limits(per_second=100, burst=4)
    for n in range(6):
        dispatcher.admit(state, job(n), never)
    sent, _ = dispatcher.ready(state, limits, now=0.0)
    assert len(sent) == 4
    for job_sent in sent:  # a burst over the number's tier: every answer is WhatsApp's 130429
        throttled = SendResult(Outcome.RETRY_LATER, job_sent["message_id"], retry_after=2.0, throttled=True,
                               error=ProviderError("130429", "throughput reached", http_status=400))
        dispatcher.settle(state, job_sent, throttled, now=0.1)
    assert state.breaker.state(0.2) == "closed"
    assert dispatcher.ready(state, limits, now=2.0)[0] == []  # paused for the 2 s it was told, from the last answer
    assert [j["message_id"] for j in dispatcher.ready(state, limits, now=2.2)[0]] == ["m-4", "m-5"]


def test_the_same_answers_as_failures_open_the_circuit() -> None:
    settings = BreakerSettings(window=4, min_calls=4, error_rate=0.5, open_seconds=10)
    dispatcher, state = Dispatcher(lambda: settings), SenderState()
    for n in range(4):
        dispatcher.admit(state, job(n), never)
    for job_sent in dispatcher.ready(state, Limits(per_second=100, burst=4), now=0.0)[0]:
        dispatcher.settle(state, job_sent, result(job_sent, Outcome.RETRY_LATER), now=0.1)
    assert state.breaker.state(0.2) == "open"


def probe_of(sent: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "probe", "message_id": sent["message_id"], "contact_id": sent["contact_id"],
            "attempt": sent["attempt"], "channel": sent["channel"], "sender": sent["sender"]}


def nothing(_: str) -> str | None:
    return None


def test_a_probe_of_a_job_waiting_or_being_sent_gets_no_answer() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    dispatcher.admit(state, job(1), never)
    assert dispatcher.probe(state, probe_of(job(1)), nothing) is None  # queued: it goes in its turn
    dispatcher.ready(state, FAST, now=0.0)
    assert dispatcher.probe(state, probe_of(job(1)), nothing) is None  # this worker is calling the provider


def test_a_probe_of_a_settled_job_repeats_its_outcome() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    dispatcher.admit(state, job(1), never)
    [sent], _ = dispatcher.ready(state, FAST, now=0.0)
    dispatcher.settle(state, sent, result(sent, Outcome.RETRY_LATER), now=0.1)
    answer = dispatcher.probe(state, probe_of(sent), nothing)
    assert answer is not None
    assert (answer["attempt"], answer["outcome"]) == (1, "retry_later")
    moved = dispatcher.probe(SenderState(), probe_of(sent), {"m-1:1": "accepted"}.get)  # in the dispatched table
    assert moved is not None
    assert moved["outcome"] == "accepted"


def test_a_probe_of_a_job_this_row_never_had_is_unknown_and_the_job_is_never_sent_later() -> None:
    dispatcher, state = Dispatcher(), SenderState()
    answer = dispatcher.probe(state, probe_of(job(1)), nothing)
    assert answer is not None
    assert answer["outcome"] == "unknown"
    assert dispatcher.admit(state, job(1), never) is None
    assert state.queued == 0


def test_a_probe_of_a_job_a_dead_worker_had_in_flight_is_unknown() -> None:
    dead, state = Dispatcher(), SenderState()
    dead.admit(state, job(1), never)
    dead.ready(state, FAST, now=0.0)
    answer = Dispatcher().probe(state, probe_of(job(1)), nothing)
    assert answer is not None
    assert answer["outcome"] == "unknown"
    assert not state.inflight
