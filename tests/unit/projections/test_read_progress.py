"""A long read's progress line: silent for a short read, refreshed once a second, ended with a newline."""

from __future__ import annotations

import io

import pytest

from projections._read_progress import ReadProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_read_over_within_a_second_shows_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    with ReadProgress("audit", out, clock) as progress:
        clock.now += 0.4
        progress(500, 1000)
        clock.now += 0.4
        progress(1000, 1000)
    assert out.getvalue() == ""


def test_a_long_read_refreshes_its_line_once_a_second_and_ends_it_when_done() -> None:
    out, clock = io.StringIO(), Clock()
    with ReadProgress("audit", out, clock) as progress:
        clock.now += 2.0
        progress(200_000, 1_000_000)
        clock.now += 0.5
        progress(300_000, 1_000_000)  # within the second: not shown
        clock.now += 0.5
        progress(1_000_000, 1_000_000)  # the end is always shown once the line is
    lines = out.getvalue().split("\r")[1:]
    assert lines == ["audit: read 200,000 of 1,000,000 records (20%), 100,000 records/s",
                     "audit: read 1,000,000 of 1,000,000 records (100%), 333,333 records/s\n"]


def test_without_a_stream_nothing_is_written_unless_stderr_is_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    with ReadProgress("audit", clock=clock) as progress:  # pytest's captured stderr is not a terminal
        clock.now += 5.0
        progress(10, 100)
    assert capsys.readouterr().err == ""
