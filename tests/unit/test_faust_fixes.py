"""The faust fix: resuming flow keeps records queued after the seek; explicit clears still drop stale ones."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from faust.transport.consumer import Consumer
from mode.services import Service
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import _faust_fixes


def _queue_with_one_record() -> tuple[FlowControlEvent, FlowControlQueue[str]]:
    flow = FlowControlEvent()
    queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.suspend()
    queue.put_nowait("record fetched after the seek")
    return flow, queue


def test_resume_keeps_records_fetched_during_the_seek() -> None:
    _faust_fixes.apply()
    flow, queue = _queue_with_one_record()
    flow.resume()
    assert flow.is_active()
    assert queue.get_nowait() == "record fetched after the seek"


def test_explicit_clear_at_rebalance_still_drops_stale_records() -> None:
    _faust_fixes.apply()
    flow, queue = _queue_with_one_record()
    flow.clear()
    assert queue.empty()


async def test_acquire_returns_once_resumed() -> None:
    _faust_fixes.apply()
    flow = FlowControlEvent()
    flow.suspend()
    waiter = asyncio.ensure_future(flow.acquire())
    flow.resume()
    await asyncio.wait_for(waiter, 5)


class _Deliverer(Service):
    """A mode service with the consumer's eager wait_first, raced as faust's drain loop races each record."""

    wait_first = _faust_fixes.eager_wait_first(Service.wait_first)  # type: ignore[assignment]


async def _delivered_at_once(box: list[str]) -> str:
    box.append("delivered")
    return "done"


async def _delivered_after(gate: asyncio.Future[str], box: list[str]) -> str:
    try:
        box.append(await gate)
        return "done"
    finally:
        box.append("cleaned up")


async def test_a_record_delivered_at_once_creates_no_task() -> None:
    service, box, suspended = _Deliverer(), list[str](), asyncio.Event()
    tasks_before = len(asyncio.all_tasks())
    never_awaited = suspended.wait()
    results = await service.wait_first(_delivered_at_once(box), never_awaited)
    assert box == ["delivered"]
    assert results.results == ["done"]
    assert not results.stopped
    # Closed, never started: no "never awaited" warning, and no task was left behind to cancel.
    assert inspect.getcoroutinestate(never_awaited) == inspect.CORO_CLOSED
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_record_that_waits_is_finished_by_the_original_race() -> None:
    service, box, suspended = _Deliverer(), list[str](), asyncio.Event()
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    racing = asyncio.ensure_future(service.wait_first(_delivered_after(gate, box), suspended.wait()))
    await asyncio.sleep(0)  # let the race start: the delivery now waits on the gate
    assert not racing.done()
    gate.set_result("delivered")
    results = await asyncio.wait_for(racing, 5)
    assert box == ["delivered", "cleaned up"]
    assert results.results == ["done"]


async def test_a_suspension_cancels_a_waiting_record_where_it_waits() -> None:
    service, box, suspended = _Deliverer(), list[str](), asyncio.Event()
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    racing = asyncio.ensure_future(service.wait_first(_delivered_after(gate, box), suspended.wait()))
    await asyncio.sleep(0)
    suspended.set()  # a rebalance: faust drops the record (its partition is sought again)
    await asyncio.wait_for(racing, 5)
    assert box == ["cleaned up"]  # the delivery saw the cancellation at its await and ran its finally
    assert gate.cancelled()


async def test_an_error_of_a_record_reaches_the_drain_loop() -> None:
    async def undecodable() -> None:
        raise ValueError("bad record")

    service, suspended = _Deliverer(), asyncio.Event()
    with pytest.raises(ValueError, match="bad record"):
        await service.wait_first(undecodable(), suspended.wait())


async def test_the_consumer_uses_the_eager_wait_first_once_applied() -> None:
    _faust_fixes.apply()
    assert Consumer.wait_first.__qualname__.startswith("eager_wait_first")
