"""The in-memory timer index: rebuilt from the rows once per assignment, O(changes) per batch, due in time order."""

from __future__ import annotations

from streams.pipeline._timers import TimerIndex


class Rows:
    """The contact rows of each partition, as the rebuild reads them; counts the reads."""

    def __init__(self, rows: dict[int, dict[str, float]]) -> None:
        self.rows, self.loads = rows, 0

    def load(self, partition: int) -> list[tuple[str, float]]:
        self.loads += 1
        return list(self.rows.get(partition, {}).items())


def test_a_partition_is_read_once_and_fires_due_contacts_earliest_first() -> None:
    rows = Rows({0: {"a": 30.0, "b": 10.0, "c": 20.0, "late": 3600.0}})
    index = TimerIndex(rows.load)
    assert index.due(0, 5.0) == []
    assert index.due(0, 25.0) == ["b", "c"]
    assert index.due(0, 25.0) == []  # fired contacts leave the index until the writer sets their next timer
    assert index.due(0, 40.0) == ["a"]
    assert rows.loads == 1
    assert index.size(0) == 1


def test_changed_and_cleared_timers_fire_only_as_last_set() -> None:
    index = TimerIndex(Rows({0: {"a": 10.0, "b": 10.0}}).load)
    index.due(0, 0.0)
    index.set(0, "a", 50.0)  # moved later: the old heap entry is stale
    index.set(0, "b", None)  # nothing waits any more
    index.set(0, "c", 20.0)
    assert index.due(0, 30.0) == ["c"]
    assert index.due(0, 60.0) == ["a"]
    assert index.size(0) == 0


def test_changes_before_the_first_tick_win_over_the_stored_rows() -> None:
    # A batch changes rows before the tick that builds the index; those rows are stored only after the batch.
    index = TimerIndex(Rows({1: {"a": 10.0, "b": 10.0}}).load)
    index.set(1, "a", None)
    index.set(1, "new", 15.0)
    assert index.size(1) is None
    assert index.due(1, 20.0) == ["b", "new"]


def test_forgetting_a_partition_rebuilds_it_from_the_rows_at_its_next_tick() -> None:
    rows = Rows({2: {"a": 10.0}})
    index = TimerIndex(rows.load)
    assert index.due(2, 5.0) == []
    rows.rows[2] = {"a": 10.0, "moved-here": 12.0}  # another owner changed the rows meanwhile
    index.forget([2])
    assert index.due(2, 15.0) == ["a", "moved-here"]
    assert rows.loads == 2


def test_stale_entries_do_not_accumulate() -> None:
    index = TimerIndex(Rows({}).load)
    index.due(0, 0.0)
    for step in range(20_000):
        index.set(0, "busy", 100.0 + step)
    assert index.size(0) == 1
    assert len(index._partitions[0].heap) < 2_000
    assert index.due(0, 1e9) == ["busy"]
