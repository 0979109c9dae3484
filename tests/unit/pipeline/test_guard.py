"""The redelivery guard across a switchover: offsets count only on the cluster they were read from."""

from __future__ import annotations

import pickle

import pytest

from streams.pipeline._dispatch import SenderState
from streams.pipeline._guard import is_redelivery, mark_applied
from streams.pipeline._state import ContactRow
from streams.pipeline._templates import TemplateRow


@pytest.mark.parametrize("row_type", [ContactRow, SenderState, TemplateRow])
def test_a_record_at_or_below_the_applied_offset_of_the_same_cluster_is_a_redelivery(row_type: type) -> None:
    row = row_type()
    mark_applied(row, 41, "primary")
    assert is_redelivery(row, 40, "primary")
    assert is_redelivery(row, 41, "primary")
    assert not is_redelivery(row, 42, "primary")


@pytest.mark.parametrize("row_type", [ContactRow, SenderState, TemplateRow])
def test_after_a_switchover_the_copys_lower_offsets_are_applied_and_then_guarded_by_its_own(row_type: type) -> None:
    row = row_type()
    mark_applied(row, 90_000, "primary")
    assert not is_redelivery(row, 12, "dr")  # the copy's partition started lower: a new command, not a repeat
    mark_applied(row, 12, "dr")
    assert is_redelivery(row, 12, "dr")
    assert not is_redelivery(row, 13, "dr")


def test_a_row_written_before_rows_knew_their_cluster_counts_as_this_clusters() -> None:
    row = ContactRow()
    row.applied_offset = 7
    del row.__dict__["applied_cluster"]  # as pickled by the previous version
    restored = pickle.loads(pickle.dumps(row))
    assert restored.applied_cluster == ""
    assert is_redelivery(restored, 7, "primary")
    assert not is_redelivery(restored, 8, "primary")
