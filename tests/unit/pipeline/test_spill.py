"""A sender's backlog beyond its row: pages in order, copies dropped, probes and the circuit aware of them."""

from __future__ import annotations

import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import Outcome
from streams.pipeline import BreakerSettings, Dispatcher, Limits, SenderState
from streams.pipeline._spill import LANE_JOBS, PAGE_JOBS, MemoryPages, Spill, pop_page, push
from tests.unit.pipeline.test_dispatch import job, never, result

BACKLOG = 3 * LANE_JOBS + PAGE_JOBS // 2  # several pages deep, the last one part full
OPEN_HAND = Limits(per_second=1_000_000, burst=1_000_000)


def ids(jobs: list[dict[str, Any]]) -> list[str]:
    return [j["message_id"] for j in jobs]


def send_everything(dispatcher: Dispatcher, state: SenderState, pages: MemoryPages,
                    per_call: Limits = OPEN_HAND) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    for tick in range(1_000):
        sending, _ = dispatcher.ready(state, per_call, float(tick), pages, never)
        for each in sending:
            dispatcher.settle(state, each, result(each), float(tick))
        sent.extend(sending)
        if not state.queued:
            return sent
    raise AssertionError(f"{state.queued} jobs never left the lanes")


def test_a_backlog_keeps_the_row_small_and_goes_out_whole_and_in_order() -> None:
    dispatcher, state, pages = Dispatcher(), SenderState(), MemoryPages()
    for n in range(BACKLOG):
        dispatcher.admit(state, job(n), never, pages)
    assert len(state.lanes[1]) == LANE_JOBS
    assert state.queued == BACKLOG
    assert len(pickle.dumps(state)) < 2 * len(pickle.dumps([job(n) for n in range(LANE_JOBS)]))
    sent = send_everything(dispatcher, state, pages, Limits(per_second=150, burst=150))
    assert ids(sent) == [f"m-{n}" for n in range(BACKLOG)]
    assert pages.pages == {}  # every page went back into the lane and was deleted


def test_a_copy_of_a_paged_job_is_sent_once() -> None:
    dispatcher, state, pages = Dispatcher(), SenderState(), MemoryPages()
    for n in range(LANE_JOBS + 10):
        dispatcher.admit(state, job(n), never, pages)
    dispatcher.admit(state, job(LANE_JOBS + 3), never, pages)  # the writer emitted it again: paged again
    dispatcher.admit(state, job(5), never, pages)  # a copy of one in the lane, paged behind the others
    sent = send_everything(dispatcher, state, pages)
    assert sorted(ids(sent)) == sorted(f"m-{n}" for n in range(LANE_JOBS + 10))


def test_a_job_settled_before_its_page_comes_back_is_not_sent_again() -> None:
    dispatcher, state, pages = Dispatcher(), SenderState(), MemoryPages()
    for n in range(LANE_JOBS + 1):
        dispatcher.admit(state, job(n), never, pages)
    settled_elsewhere = {f"m-{LANE_JOBS}:1"}  # e.g. in the `dispatched` table: sent by the partition's last owner
    sent = []
    while state.queued:
        sending, _ = dispatcher.ready(state, OPEN_HAND, 0.0, pages, lambda key: key in settled_elsewhere)
        sent.extend(sending)
    assert f"m-{LANE_JOBS}" not in ids(sent)
    assert len(sent) == LANE_JOBS


def test_a_probe_waits_while_jobs_are_paged_then_gets_its_answer() -> None:
    dispatcher, state, pages = Dispatcher(), SenderState(), MemoryPages()
    for n in range(LANE_JOBS + 1):
        dispatcher.admit(state, job(n), never, pages)
    never_here = {**job(10_000), "kind": "probe"}
    assert dispatcher.probe(state, never_here, lambda _: None) is None  # it might be on a page
    send_everything(dispatcher, state, pages)
    answer = dispatcher.probe(state, never_here, lambda _: None)
    assert answer is not None
    assert answer["outcome"] == "unknown"


def test_an_open_circuit_sheds_paged_high_and_normal_jobs_and_keeps_low_ones() -> None:
    breaker = BreakerSettings(window=4, min_calls=4, error_rate=0.5, open_seconds=10)
    dispatcher, state, pages = Dispatcher(lambda: breaker), SenderState(), MemoryPages()
    for n in range(4):
        dispatcher.admit(state, job(n), never, pages)
    for sent in dispatcher.ready(state, OPEN_HAND, 0.0, pages, never)[0]:
        dispatcher.settle(state, sent, result(sent, Outcome.RETRY_LATER), now=0.0)
    for n in range(10, 10 + LANE_JOBS + 50):
        dispatcher.admit(state, job(n), never, pages)
    for n in range(1_000, 1_000 + LANE_JOBS + 50):
        dispatcher.admit(state, job(n, "low"), never, pages)
    sending, refused = dispatcher.ready(state, OPEN_HAND, 1.0, pages, never)
    assert sending == []
    assert sorted(ids(refused)) == sorted(f"m-{n}" for n in range(10, 10 + LANE_JOBS + 50))
    assert state.queued == LANE_JOBS + 50  # the low-priority jobs wait the circuit out, their pages too


def test_only_the_tail_pages_jobs_the_row_counts_are_taken() -> None:
    pages, spill = MemoryPages(), Spill()
    for n in range(PAGE_JOBS + 3):
        spill = push(spill, 1, job(n), pages)
    pages.pages[(1, spill.tail)].append(job(99_999))  # written by a batch that died before its row was
    spill, first = pop_page(spill, 1, pages)
    spill, last = pop_page(spill, 1, pages)
    assert ids(first + last) == [f"m-{n}" for n in range(PAGE_JOBS + 3)]
    assert spill.count == 0
    assert pages.pages == {}


def test_a_row_pickled_before_lanes_had_pages_reads_as_having_none() -> None:
    state = SenderState()
    del state.__dict__["spill"]  # as a row written by the previous release restores
    restored = pickle.loads(pickle.dumps(state))
    assert restored.spilled == 0
    assert restored.queued == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["push", "pop"]), st.integers(0, 2)), max_size=300))
def test_pages_keep_every_job_once_and_in_order_per_lane(steps: list[tuple[str, int]]) -> None:
    pages, spills, model = MemoryPages(), [Spill(), Spill(), Spill()], [[], [], []]  # type: ignore[var-annotated]
    taken: list[list[str]] = [[], [], []]
    for n, (step, lane) in enumerate(steps * 3):  # repeated, so pages fill and roll over
        if step == "push":
            spills[lane] = push(spills[lane], lane, job(n), pages)
            model[lane].append(f"m-{n}")
        elif spills[lane].count:
            spills[lane], jobs = pop_page(spills[lane], lane, pages)
            taken[lane].extend(ids(jobs))
        assert spills[lane].count == len(model[lane]) - len(taken[lane])
    for lane in range(3):
        while spills[lane].count:
            spills[lane], jobs = pop_page(spills[lane], lane, pages)
            taken[lane].extend(ids(jobs))
        assert taken[lane] == model[lane]
