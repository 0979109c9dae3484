"""The Transport seam: the aiohttp implementation against a local server, and the in-memory one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from connectors import (
    AiohttpTransport,
    InMemoryTransport,
    Transport,
    TransportError,
    TransportRequest,
    TransportResponse,
    TransportTimeout,
)
from switchboard.serving import Served, serve


class Server:
    """A local server: /echo answers 201 with the body and a header; /slow waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.served: Served | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/echo", self.echo)
        app.router.add_get("/slow", self.slow)
        self.served = await serve(app, access_log=None, shutdown_timeout=0.5)
        self.url = self.served.url

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=201, body=body, headers={"X-Seen": request.headers.get("X-Test", "")})

    async def slow(self, _: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(text="late")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    started = Server()
    await started.start()
    yield started
    started.release.set()
    assert started.served is not None
    await started.served.close()


async def test_aiohttp_transport_returns_status_headers_and_body(server: Server) -> None:
    transport = AiohttpTransport(timeout=5)
    assert isinstance(transport, Transport)
    response = await transport.request("POST", f"{server.url}/echo", {"X-Test": "yes"}, b'{"a":1}')
    assert (response.status, response.headers["X-Seen"], response.body) == (201, "yes", b'{"a":1}')
    await transport.aclose()


async def test_aiohttp_transport_times_out_as_maybe_sent(server: Server) -> None:
    transport = AiohttpTransport(timeout=0.2)
    with pytest.raises(TransportTimeout) as timed_out:
        await transport.request("GET", f"{server.url}/slow", {}, None)
    assert timed_out.value.maybe_sent
    await transport.aclose()


async def test_aiohttp_transport_refused_connection_was_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    transport = AiohttpTransport(timeout=2)
    with pytest.raises(TransportError) as refused:
        await transport.request("POST", f"http://127.0.0.1:{port}/x", {}, b"")
    assert not refused.value.maybe_sent
    await transport.aclose()


async def test_aiohttp_transport_leaves_a_borrowed_session_open(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session=session)
        await transport.request("POST", f"{server.url}/echo", {}, b"")
        await transport.aclose()
        assert not session.closed


async def test_in_memory_transport_answers_from_script_then_handler() -> None:
    async def handler(request: TransportRequest) -> TransportResponse:
        return TransportResponse(202, {}, request.body or b"")

    transport = InMemoryTransport(handler=handler, script=[TransportResponse(200, {}, b"first"),
                                                           TransportError("down", maybe_sent=False)])
    assert isinstance(transport, Transport)
    assert (await transport.request("POST", "mem://a", {}, b"1")).body == b"first"
    with pytest.raises(TransportError, match="down"):
        await transport.request("POST", "mem://b", {}, b"2")
    assert (await transport.request("POST", "mem://c", {"H": "v"}, b"3")).status == 202
    assert [r.url for r in transport.requests] == ["mem://a", "mem://b", "mem://c"]
    assert transport.requests[2].headers == {"H": "v"}
    await transport.aclose()
    assert transport.closed


async def test_in_memory_transport_without_answers_fails_loudly() -> None:
    with pytest.raises(TransportError, match="no scripted response and no handler"):
        await InMemoryTransport().request("GET", "mem://x", {}, None)
