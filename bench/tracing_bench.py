"""Tracing's cost: trace headers per record consumed and produced, and a JSON log line with masking."""

from __future__ import annotations

import io
import logging
import timeit
from collections.abc import Callable

from switchboard import logs, tracing

REPEATS, NUMBER = 9, 2000


def _best(statement: Callable[[], object]) -> float:
    """Microseconds per call, the best of REPEATS runs (the least disturbed by other load)."""
    return min(timeit.repeat(statement, repeat=REPEATS, number=NUMBER)) / NUMBER * 1e6


def main() -> None:
    span = tracing.new_trace()
    headers = tracing.record_headers(span.trace_id)

    def per_record() -> None:
        with tracing.use(tracing.from_record_headers(headers)):
            tracing.record_headers(span.trace_id)

    logger = logging.getLogger("bench.tracing")
    logger.addHandler(logs.handler("json", io.StringIO()))
    logger.propagate = False
    quiet = logging.getLogger("bench.tracing.quiet")
    quiet.setLevel(logging.WARNING)
    args = ("c7cca417-c818-5a6e-a98c-00bcdc7103e9", 1, "whatsapp/wa-main", "accepted")
    logger.setLevel(logging.INFO)
    figures = {
        "consume a record's trace and produce one child's headers": _best(per_record),
        "  read the headers": _best(lambda: tracing.from_record_headers(headers)),
        "  make a child's headers": _best(lambda: tracing.record_headers(span.trace_id)),
        "one JSON log line with the trace, masking on": _best(lambda: logger.info("message %s attempt %s via %s: %s",
                                                                                  *args)),
        "the same line below the level": _best(lambda: quiet.info("message %s attempt %s via %s: %s", *args)),
        "reference: 'x'.join(['a', 'b'])": _best(lambda: "x".join(["a", "b"])),
    }
    for what, micros in figures.items():
        print(f"{what:<58} {micros:8.2f} µs")


if __name__ == "__main__":
    main()
