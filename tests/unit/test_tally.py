"""The tally fold: running totals per customer, with redelivered records recognised by their offset."""

from __future__ import annotations

from streams.tally import is_redelivery, tally


def test_tally_accumulates_orders_and_amounts() -> None:
    state = tally(None, {"amount_cents": 250}, offset=0)
    state = tally(state, {"amount_cents": 100}, offset=4)
    assert state == {"orders": 2, "total_cents": 350, "applied_offset": 4}


def test_redelivered_record_changes_nothing() -> None:
    state = tally(tally(None, {"amount_cents": 250}, offset=7), {"amount_cents": 100}, offset=9)
    assert tally(state, {"amount_cents": 100}, offset=9) == state
    assert tally(state, {"amount_cents": 250}, offset=7) == state
    assert is_redelivery(state, 9)
    assert not is_redelivery(state, 10)
    assert not is_redelivery(None, 0)
