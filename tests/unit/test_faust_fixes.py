"""The faust fix: resuming flow keeps records queued after the seek; explicit clears still drop stale ones."""

from __future__ import annotations

import asyncio

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
