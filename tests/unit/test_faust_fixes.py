"""The faust fixes: resuming flow keeps records fetched during the seek; explicit clears still drop stale ones;
faust seeks through ours (against the broker: tests/integration/test_faust_seek_fix.py)."""

from __future__ import annotations

import asyncio

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
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


def test_faust_seeks_through_the_fix() -> None:
    _faust_fixes.apply()
    assert AIOKafkaConsumerThread.seek_to_committed is _faust_fixes._seek_to_committed
