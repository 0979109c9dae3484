"""The callback feeder's commits never pass an unfinished record, whatever order deliveries finish in."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.callback_feeder import OffsetTracker

# Offsets of the records taken from one partition: increasing, with gaps (transaction markers, compaction).
gaps = st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60)


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[int], list[int], list[bool]]:
    """Started offsets, the order they finish in, and after which finish a commit is attempted."""
    offsets = list(itertools.accumulate(draw(gaps)))
    finish_order = draw(st.permutations(offsets))
    commits = draw(st.lists(st.booleans(), min_size=len(offsets), max_size=len(offsets)))
    return offsets, list(finish_order), commits


@settings(max_examples=300, deadline=None)
@given(run=runs())
def test_committed_offsets_cover_only_finished_records_and_reach_the_end(
        run: tuple[list[int], list[int], list[bool]]) -> None:
    offsets, finish_order, commits = run
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in offsets:
        tracker.start("p", offset)
    finished: set[int] = set()
    committed = 0
    for offset, commit in zip(finish_order, commits, strict=True):
        tracker.finish("p", offset)
        finished.add(offset)
        if commit and (advanced := tracker.advanced()):
            assert advanced["p"] > committed  # commits only move forward
            assert all(o in finished for o in offsets if o < advanced["p"])  # nothing unfinished is passed
            committed = advanced["p"]
            tracker.mark_committed(advanced)
        assert tracker.pending("p") == len(offsets) - len(finished)
    final = tracker.advanced().get("p", committed)
    assert final == offsets[-1] + 1  # once everything is finished, everything is committable


@settings(max_examples=200, deadline=None)
@given(run=runs(), split=st.integers(min_value=0, max_value=60))
def test_finishing_twice_or_finishing_unknown_offsets_changes_nothing(
        run: tuple[list[int], list[int], list[bool]], split: int) -> None:
    offsets, finish_order, _ = run
    once: OffsetTracker[str] = OffsetTracker()
    noisy: OffsetTracker[str] = OffsetTracker()
    for offset in offsets:
        once.start("p", offset)
        noisy.start("p", offset)
    for offset in finish_order[:split]:
        once.finish("p", offset)
        noisy.finish("p", offset)
        noisy.finish("p", offset)  # a duplicate record finishing with the original
        noisy.finish("p", offset + 1000)  # never started
        noisy.finish("q", offset)  # a partition that was revoked
    assert noisy.advanced() == once.advanced()
    assert noisy.pending("p") == once.pending("p")
