"""Serving an aiohttp app on a host and port (0: an ephemeral one), and where it then listens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["Served", "free_port", "serve", "serving"]


@dataclass(frozen=True)
class Served:
    """An app being served: its base URL (`http://<host>:<port>`, the host asked for and the port it really bound)
    until `close()`."""

    runner: web.AppRunner
    url: str
    port: int

    async def close(self) -> None:
        """Stops listening and shuts the app down (its cleanup hooks run)."""
        await self.runner.cleanup()


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0, **runner_options: Any) -> Served:
    """Starts serving `app`; port 0 takes any free port. `runner_options` go to aiohttp's AppRunner (access log,
    shutdown timeout). For parts with their own start and stop; `serving` is the `async with` form."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()  # the port was taken or refused: nothing is left half set up
        raise
    bound_port = runner.addresses[0][1]
    # The host as asked (a name stays a name), an IPv6 literal in brackets; the port as bound.
    return Served(runner, f"http://{f'[{host}]' if ':' in host else host}:{bound_port}", bound_port)


@asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                  **runner_options: Any) -> AsyncIterator[str]:
    """Serves `app` for the block and yields its base URL."""
    served = await serve(app, host, port, **runner_options)
    try:
        yield served.url
    finally:
        await served.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a part whose URL must be known before it starts (a provider's
    callback URL in a declaration written first). Another process could take it in between; on one machine
    running one demo that does not happen, and the part then fails to bind, loudly."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
