"""A faust worker whose one agent does nothing with its records: faust's own CPU per record, for `bin/bench floor`.

Run as `python -m bench._faust_floor BOOTSTRAP TOPIC COUNT`. The agent reads the topic in batches as the pipeline's
agents do (take_events, 500 within 50 ms, at-least-once) and prints `first <cpu>` at its first batch and
`done <cpu>` once it has seen COUNT records: the process's CPU seconds at each (all threads: faust's consumer runs
in a thread of its own), so the worker's start and its joining the group are not counted.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import faust

from bench._common import own_cpu_seconds
from streams import _faust_fixes
from streams.tally import service_worker

BATCH = (500, 0.05)  # the pipeline's batch_max and batch_within (streams/pipeline/app.py PipelineSettings)


def build_app(bootstrap: str, topic_name: str, count: int) -> faust.App:
    _faust_fixes.apply()
    app = faust.App(f"bench-floor-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}", store="memory://",
                    web_enabled=False, consumer_auto_offset_reset="earliest", processing_guarantee="at_least_once")
    topic = app.topic(topic_name, key_type=str, value_serializer="raw")

    @app.agent(topic, concurrency=1)
    async def nothing(stream: faust.StreamT[Any]) -> None:
        seen = 0
        async for events in stream.take_events(*BATCH):  # type: ignore[attr-defined]  # faust.Stream's, untyped
            if seen == 0:
                print(f"first {own_cpu_seconds()}", flush=True)
            seen += len(events)
            if seen >= count:
                print(f"done {own_cpu_seconds()}", flush=True)

    return app


def main() -> None:
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    service_worker(build_app(bootstrap, topic, count)).execute_from_commandline()


if __name__ == "__main__":
    main()
