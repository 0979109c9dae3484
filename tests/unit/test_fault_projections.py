"""The fault suite's projection verifiers: progress lines every few seconds and at the end, and the options that
point `switchboard project`/`replay` at a scenario's store and topics."""

from __future__ import annotations

from pathlib import Path

from bench.faults._projections import Reporter, Target
from projections import Progress


def test_progress_is_printed_every_few_seconds_and_at_the_end() -> None:
    now, lines = [0.0], list[str]()
    report = Reporter("message-status rebuild", every=5.0, clock=lambda: now[0], out=lines.append)
    for applied, at in ((5_000, 0.0), (10_000, 2.0), (15_000, 5.5), (20_000, 7.0), (25_000, 8.0)):
        now[0] = at
        report(Progress(applied=applied, total=25_000))
    assert lines == ["  verify message-status rebuild: 5,000/25,000 events folded",
                     "  verify message-status rebuild: 15,000/25,000 events folded",
                     "  verify message-status rebuild: 25,000/25,000 events folded"]


def test_a_target_names_its_topics_and_store_for_the_cli() -> None:
    rocks = Target("127.0.0.1:9092", "faults-x-", "delivery-stats", Path("/tmp/p"))
    assert rocks.options() == ["--bootstrap", "127.0.0.1:9092", "--topic-prefix", "faults-x-", "--root", "/tmp/p",
                               "--store", "rocksdb"]
    postgres = Target("b:1", "p-", "message-status", Path("/r"), "postgres", "postgresql://u@h:5/d")
    assert postgres.options()[-4:] == ["--store", "postgres", "--postgres-dsn", "postgresql://u@h:5/d"]
