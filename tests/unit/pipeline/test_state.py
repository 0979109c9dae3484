"""A contact row's memory of finished messages: the newest FINISHED_KEPT ids, so a repeated request is known."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest

from streams.pipeline._state import FINISHED_KEPT, ContactRow


def _finish_many(row: ContactRow, count: int) -> None:
    for n in range(count):
        row.finish(f"m-{n}", "read")


@pytest.mark.parametrize("kind", [dict, OrderedDict], ids=["dict", "OrderedDict of rows written before"])
def test_the_oldest_finished_ids_are_forgotten_first(kind: type[dict[str, str]]) -> None:
    row = ContactRow(finished=kind())
    _finish_many(row, FINISHED_KEPT + 5)
    assert len(row.finished) == FINISHED_KEPT
    assert not any(row.knows(f"m-{n}") for n in range(5))
    assert all(row.knows(f"m-{n}") for n in range(5, FINISHED_KEPT + 5))
    assert next(iter(row.finished)) == "m-5"


def test_a_row_pickles_its_finished_ids_in_order() -> None:
    row = ContactRow()
    _finish_many(row, 3)
    assert list(pickle.loads(pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)).finished) == ["m-0", "m-1", "m-2"]
