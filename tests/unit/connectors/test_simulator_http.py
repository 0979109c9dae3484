"""The simulator's webhook poster against real servers: answers of every framing, reuse, stale and dead peers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from aiohttp import web

from connectors._simulator_http import PostFailed, WebhookPoster
from switchboard.serving import serving

HEADERS = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=ab"}


class Recorder:
    """Answers every POST and remembers its body, headers and the client port it came from."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, dict[str, str], int]] = []

    async def plain(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"status": "accepted"})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(status=202)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"part one, ")
        await response.write(b"part two")
        await response.write_eof()
        return response

    async def closing(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=503, text="busy", headers={"Connection": "close"})

    async def _record(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append((await request.read(), dict(request.headers), peer[1] if peer else 0))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/plain", self.plain)
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/closing", self.closing)
        return app


async def test_posts_reuse_one_connection_and_deliver_body_and_headers() -> None:
    recorder = Recorder()
    poster = WebhookPoster(limit=4, timeout=5.0)
    async with serving(recorder.app()) as base:
        statuses = [await poster.post(f"{base}/plain", f'{{"n":{n}}}'.encode(), HEADERS) for n in range(5)]
    await poster.aclose()
    assert statuses == [200] * 5
    assert [body for body, _, _ in recorder.seen] == [f'{{"n":{n}}}'.encode() for n in range(5)]
    assert recorder.seen[0][1]["X-Hub-Signature-256"] == "sha256=ab"
    assert len({port for _, _, port in recorder.seen}) == 1  # kept alive


async def test_chunked_and_closing_answers_are_read_whole() -> None:
    recorder = Recorder()
    poster = WebhookPoster(limit=4, timeout=5.0)
    async with serving(recorder.app()) as base:
        assert await poster.post(f"{base}/chunked", b"{}", HEADERS) == 202
        assert await poster.post(f"{base}/chunked", b"{}", HEADERS) == 202  # the stream was left at a boundary
        assert await poster.post(f"{base}/closing", b"{}", HEADERS) == 503
        assert await poster.post(f"{base}/plain", b"{}", HEADERS) == 200
    await poster.aclose()
    ports = [port for _, _, port in recorder.seen]
    assert ports[0] == ports[1] == ports[2]
    assert ports[3] != ports[2]  # "Connection: close" was honoured


async def test_concurrent_posts_open_one_connection_each() -> None:
    recorder = Recorder()
    poster = WebhookPoster(limit=8, timeout=5.0)
    async with serving(recorder.app()) as base:
        statuses = await asyncio.gather(*(poster.post(f"{base}/plain", b"{}", HEADERS) for _ in range(8)))
        again = await asyncio.gather(*(poster.post(f"{base}/plain", b"{}", HEADERS) for _ in range(8)))
    await poster.aclose()
    assert statuses == again == [200] * 8
    assert len({port for _, _, port in recorder.seen}) == 8  # the second round reused the first's connections


async def test_a_connection_the_server_closed_is_replaced() -> None:
    answered = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        answered += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # keep-alive offered, then closed
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = WebhookPoster(limit=2, timeout=5.0)
    try:
        assert await poster.post(f"http://127.0.0.1:{port}/hook", b"{}", HEADERS) == 200
        assert await poster.post(f"http://127.0.0.1:{port}/hook", b"{}", HEADERS) == 200
    finally:
        await poster.aclose()
        server.close()
        await server.wait_closed()
    assert answered == 2


async def test_refused_and_silent_peers_fail_the_post() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free_port = unused.getsockname()[1]
    poster = WebhookPoster(limit=1, timeout=0.5)
    with pytest.raises(PostFailed):
        await poster.post(f"http://127.0.0.1:{free_port}/hook", b"{}", HEADERS)

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.read()  # until the poster gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        with pytest.raises(PostFailed, match="TimeoutError"):
            await poster.post(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook", b"{}", HEADERS)
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(PostFailed):
        await poster.post("https://127.0.0.1:1/hook", b"{}", HEADERS)  # http only
    await poster.aclose()
