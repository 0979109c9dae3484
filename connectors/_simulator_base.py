"""What the small provider simulators (Twilio, Messenger) share: a port, and webhooks posted in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web

from connectors._simulator_http import PostFailed, WebhookPoster
from switchboard.serving import Served, serve

__all__ = ["ProviderSimulator"]

_log = logging.getLogger(__name__)


class ProviderSimulator:
    """An aiohttp app on a local port (`routes` adds the provider's endpoints) whose answers start background tasks
    that post webhooks over a keep-alive pool, each POST tried `attempts` times; `async with` runs it."""

    provider: ClassVar[str]

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._tasks: set[asyncio.Task[None]] = set()
        self._poster = WebhookPoster(limit=16, timeout=5.0)
        self._served: Served | None = None

    @property
    def url(self) -> str:
        """The base URL to give the driver as `base_url`."""
        if self._served is None:
            raise RuntimeError(f"the {self.provider} simulator is not started")
        return self._served.url

    @property
    def pending(self) -> int:
        """Messages whose webhooks are still to be posted."""
        return len(self._tasks)

    def routes(self, app: web.Application) -> None:
        """Adds the provider's endpoints."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = web.Application()
        self.routes(app)
        self._served = await serve(app, self._host, self._port, access_log=None)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._poster.aclose()
        if self._served is not None:
            await self._served.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs a message's webhooks in the background (cancelled when the simulator stops)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str], attempts: int, interval: float) -> bool:
        """Whether one of `attempts` POSTs got a 2xx (`interval` apart)."""
        for _ in range(attempts):
            try:
                if 200 <= await self._poster.post(url, body, headers) < 300:
                    return True
            except PostFailed as error:
                _log.debug("%s webhook to %s failed: %s", self.provider, url, error)
            await asyncio.sleep(interval)
        return False
