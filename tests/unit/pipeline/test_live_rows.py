"""The live rows a worker keeps between batches: bounded, least recently used out, dropped per partition."""

from __future__ import annotations

from streams.pipeline._rows import LiveRows


def test_a_row_is_held_per_partition_and_key() -> None:
    rows = LiveRows()
    row = {"applied_offset": 7}
    rows.put(1, "contact", row)
    assert rows.get(1, "contact") is row
    assert rows.get(2, "contact") is None


def test_the_least_recently_used_row_leaves_first() -> None:
    rows = LiveRows(limit=2)
    rows.put(0, "a", "A")
    rows.put(0, "b", "B")
    assert rows.get(0, "a") == "A"  # a is now the most recent
    rows.put(0, "c", "C")
    assert (rows.get(0, "a"), rows.get(0, "b"), rows.get(0, "c")) == ("A", None, "C")


def test_forgetting_partitions_drops_only_their_rows() -> None:
    rows = LiveRows()
    rows.put(0, "a", "A")
    rows.put(1, "b", "B")
    rows.forget({1})
    assert (rows.get(0, "a"), rows.get(1, "b")) == ("A", None)
