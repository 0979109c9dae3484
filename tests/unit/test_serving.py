"""Serving an aiohttp app: the URL it yields answers, the port is the one bound, and it is closed afterwards."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from switchboard.serving import free_port, serve, serving


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="hello")


def hello_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/hello", hello)
    return app


async def test_the_url_answers_on_the_port_bound_and_nothing_answers_after_the_block() -> None:
    async with aiohttp.ClientSession() as session:
        async with serving(hello_app()) as url:
            assert url.startswith("http://127.0.0.1:")
            assert not url.endswith(":0")
            async with session.get(f"{url}/hello") as answer:
                assert (answer.status, await answer.text()) == (200, "hello")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{url}/hello"):
                pass


async def test_a_taken_port_raises_and_the_first_server_goes_on() -> None:
    first = await serve(hello_app())
    try:
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await serve(hello_app(), port=first.port)
        async with aiohttp.ClientSession() as session, session.get(f"{first.url}/hello") as answer:
            assert answer.status == 200
    finally:
        await first.close()


async def test_an_ipv6_host_is_bracketed_in_the_url() -> None:
    served = await serve(hello_app(), "::1")
    try:
        assert served.url == f"http://[::1]:{served.port}"
    finally:
        await served.close()


async def test_a_free_port_can_then_be_served_on() -> None:
    port = free_port()
    served = await serve(hello_app(), port=port)
    try:
        assert (served.port, served.url) == (port, f"http://127.0.0.1:{port}")
    finally:
        await served.close()
