"""Fixes for faust-streaming defects (records lost, CPU spent per record), applied once before any app is built."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import Service, WaitResults
from mode.utils.queues import FlowControlEvent

_APPLIED = False
WaitFirst = Callable[..., Awaitable[WaitResults]]


def _resume_without_clearing(self: FlowControlEvent) -> None:
    """FlowControlEvent.resume, minus the queue clearing that drops records fetched after the seek.

    faust-streaming 0.15.3 ends recovery with resume_partitions() -> perform_seek() -> flow_control.resume()
    (tables/recovery.py). Records fetched during the seek round trip are queued for the agent and the
    consumer's read offset moves past them; resume() then clears the queues, so they are never processed
    and their offsets are committed with the next ones: lost. Found by tests/integration/
    test_faust_table_restore.py (about one run in five). Stale records of the previous assignment are still
    dropped by the explicit flow_control.clear() faust calls when partitions are revoked and assigned, and a
    stale record that survives is a redelivery, which the agents' offset-keyed state already absorbs.
    """
    self._suspend.clear()
    self._resume.set()


class _Resumed:
    """The rest of a coroutine that has run up to its first wait, where it handed `waiting_on` to its driver.

    Awaited in a task, it passes on exactly what asyncio.Task would exchange with the coroutine: the future it
    waits on goes to the task, a wake-up comes back as send(None) (the coroutine then reads the future's outcome
    itself, its CancelledError included) and a cancellation thrown into the task is thrown into the coroutine.
    """

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coroutine, self._waiting_on = coroutine, waiting_on

    def __await__(self) -> Generator[Any, None, Any]:
        waiting_on = self._waiting_on
        while True:
            thrown: BaseException | None = None
            try:
                yield waiting_on
            except GeneratorExit:  # this awaitable is being closed, unfinished: so is the coroutine
                self._coroutine.close()
                raise
            except BaseException as error:  # the task's cancellation: the coroutine handles it
                thrown = error
            try:
                waiting_on = self._coroutine.send(None) if thrown is None else self._coroutine.throw(thrown)
            except StopIteration as finished:
                return finished.value


def eager_wait_first(original: WaitFirst) -> WaitFirst:
    """Service.wait_first for the consumer's delivery of each fetched record, without four tasks per record.

    faust's drain loop (Consumer._drain_messages) calls `wait_first(callback(message), suspend_flow.wait())` for
    every record: four tasks created, raced and three cancelled (py-spy: a quarter of a no-op agent's CPU, about
    35 µs a record; BENCHMARKS.md). The callback almost always finishes without waiting: there is room in the
    stream's buffer. So its first step runs here, at once; only if it waits (flow suspended for a rebalance, a
    full buffer) does the rest race the suspension in the original wait_first, as before.
    """

    async def wait_first(self: Service, *coros: Any, timeout: float | None = None) -> WaitResults:
        first = coros[0] if coros else None
        if timeout is not None or not asyncio.iscoroutine(first):
            return await original(self, *coros, timeout=timeout)
        try:
            waiting_on = first.send(None)
        except StopIteration as finished:
            _close(coros[1:])
            return WaitResults([first], [finished.value], False)
        except BaseException:
            _close(coros[1:])
            raise
        return await original(self, _Resumed(first, waiting_on), *coros[1:])

    return wait_first


def _close(coros: tuple[Any, ...]) -> None:
    """Closes the coroutines that were raced against one which finished first (never started, never awaited)."""
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


def apply() -> None:
    """Installs the fixes (idempotent)."""
    global _APPLIED
    if not _APPLIED:
        FlowControlEvent.resume = _resume_without_clearing  # type: ignore[method-assign]
        Consumer.wait_first = eager_wait_first(Consumer.wait_first)  # type: ignore[method-assign, assignment]
        _APPLIED = True
