"""Stopping the fault suite's topic readers: a fetch task that swallows its first cancellation still ends."""

from __future__ import annotations

import asyncio
import contextlib

from bench.faults._log import stop_consumer


class _Fetcher:
    """aiokafka's fetcher as it hangs: the routine swallows the cancel close() sends, then waits on."""

    def __init__(self) -> None:
        self.cancels_seen = 0
        self._fetch_task = asyncio.ensure_future(self._routine())

    async def _routine(self) -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels_seen += 1
                if self.cancels_seen > 1:
                    raise  # the second cancel lands outside the suppressing block

    async def close(self) -> None:
        self._fetch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._fetch_task


class _Consumer:
    def __init__(self) -> None:
        self._fetcher = _Fetcher()

    async def stop(self) -> None:
        await self._fetcher.close()


async def test_a_stop_whose_cancel_was_swallowed_still_ends() -> None:
    consumer = _Consumer()
    await asyncio.wait_for(stop_consumer(consumer, grace=0.05), 5)
    assert consumer._fetcher._fetch_task.done()
    assert consumer._fetcher.cancels_seen == 2
