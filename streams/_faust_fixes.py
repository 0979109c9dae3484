"""Fixes for faust-streaming defects that lose records, applied once before any app is built."""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent

_APPLIED = False


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


def apply() -> None:
    """Installs the fixes (idempotent)."""
    global _APPLIED
    if not _APPLIED:
        FlowControlEvent.resume = _resume_without_clearing  # type: ignore[method-assign]
        _APPLIED = True
