"""A pipeline worker on the WhatsApp simulator, with receipts back through the receiver and the normaliser."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET
from connectors.whatsapp_simulator import WhatsAppSimulator
from streams.pipeline.app import PipelineSettings
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration.pipeline_support import write_pipeline
from tests.integration.test_receipts_end_to_end import ACCESS_TOKEN, APP_SECRET, SENDER, Stack, receiver

__all__ = ["SENDER", "switchboard", "webhook_stack"]


@asynccontextmanager
async def webhook_stack(bootstrap: str, directory: Path, *, extra: str = "", max_attempts: int = 4,
                        per_second: float = 1000, burst: float = 1000,
                        **faults: Any) -> AsyncIterator[Stack]:
    """Simulator (options as WhatsAppSimulator's), receiver, one pipeline worker and the normaliser, all running."""
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    options: dict[str, Any] = {"pair_window": None, "enforce_window": False, "mps_limit": None, **faults}
    with pytest.MonkeyPatch.context() as env:
        # The receiver, the pipeline subprocess and the normaliser read WhatsApp's secrets from the environment.
        env.setenv(ENV_ACCESS_TOKEN, ACCESS_TOKEN)
        env.setenv(ENV_APP_SECRET, APP_SECRET)
        sink = KafkaWebhookSink(bootstrap, prefix=prefix, partitions=3)
        async with sink, receiver(sink) as url, WhatsAppSimulator(
                access_token=ACCESS_TOKEN, app_secret=APP_SECRET, webhook_url=url,
                phone_numbers={SENDER: "15550001111"}, **options) as simulator:
            config = write_pipeline(directory, driver="whatsapp", settings=f'base_url = "{simulator.url}"',
                                    max_attempts=max_attempts, per_second=per_second, burst=burst, extra=extra)
            settings = PipelineSettings(bootstrap=bootstrap, data_dir=str(directory / "state"),
                                        config_path=str(config), app_id=f"{prefix}pipeline", topic_prefix=prefix)
            await ensure_topics(bootstrap, settings.topic_specs())
            worker = WorkerProcess(settings, directory / "pipeline.log")
            worker.start()
            normaliser = Normaliser(NormaliserConfig(bootstrap, prefix, f"{prefix}normaliser", config))
            task = asyncio.create_task(normaliser.run())
            try:
                yield Stack(bootstrap, prefix, url, simulator, worker, normaliser, task)
            finally:
                normaliser.stop()
                await asyncio.wait_for(task, 30)
                worker.kill()


async def switchboard(*args: str) -> tuple[int, str]:
    """`switchboard ARGS` as a process: its exit code and its output (stderr included)."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard.cli", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def switchboard_json(*args: str) -> Any:
    """`switchboard ARGS --json`, its output read as JSON (the command must succeed)."""
    code, output = await switchboard(*args, "--json")
    assert code == 0, output
    return json.loads(output)
