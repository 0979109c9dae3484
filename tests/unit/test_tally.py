"""The tally fold: running totals per customer, with redelivered records recognised by their offset."""

from __future__ import annotations

import logging
from pathlib import Path

from streams.tally import TallyConfig, build_app, is_redelivery, service_worker, tally


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


def test_service_worker_has_no_spinner_so_debug_logging_stays_off(tmp_path: Path) -> None:
    app = build_app(TallyConfig(bootstrap="127.0.0.1:1", data_dir=str(tmp_path), replication=1))
    worker = service_worker(app)
    assert worker.spinner is None
    root = logging.getLogger("sb-test-root")
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)
    worker.on_setup_root_logger(root, logging.WARNING)  # what faust calls once logging is set up
    assert root.level == logging.WARNING
