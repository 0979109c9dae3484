"""A long read's progress on stderr: one refreshed line, at most once a second, nothing for a short read."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["ReadProgress"]


class ReadProgress:
    """Called with (records read, records to read) as a read goes on; used as a context that ends the line.

    Without a stream it writes to stderr only when that is a terminal: output piped or captured (`--json` read by
    a program, a CI log) stays free of carriage-return lines.
    """

    def __init__(self, what: str, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 every: float = 1.0) -> None:
        self._what, self._stream, self._clock, self._every = what, stream, clock, every
        self._enabled = stream is not None or sys.stderr.isatty()
        self._started = self._shown = clock()
        self._showing = False

    def __call__(self, read: int, total: int) -> None:
        now = self._clock()
        finished = read >= total
        if not self._enabled or (now - self._shown < self._every and not (finished and self._showing)):
            return  # a read over within the first second shows nothing
        self._shown, self._showing = now, True
        rate = read / max(now - self._started, 1e-9)
        share = read / total if total else 1.0
        self._out.write(f"\r{self._what}: read {read:,} of {total:,} records ({share:.0%}), {rate:,.0f} records/s")
        self._out.flush()

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._showing:
            self._out.write("\n")

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stderr  # looked up when written: pytest's capture replaces sys.stderr
