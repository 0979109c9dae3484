"""The simulator's webhook poster: plain HTTP/1.1 POSTs over a pool of keep-alive connections, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["PostFailed", "WebhookPoster"]

_MAX_HEAD = 64 * 1024  # status line and headers of an answer


class PostFailed(Exception):
    """No complete HTTP answer: refused, reset, closed, unreadable or too slow."""


class _Connection:
    """One keep-alive connection to the receiver."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class WebhookPoster:
    """POSTs bodies to http:// URLs and returns the answer's status; at most `limit` idle connections are kept.

    A webhook simulator posts thousands per second: aiohttp's client (cookies, redirects, tracing hooks, a timer
    per phase) cost more CPU than building the receipts. This writes one request and reads one answer
    (Content-Length, chunked, or up to the close) per connection at a time, as Meta's poster does.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self._limit = max(1, limit)
        self._timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The answer's HTTP status; PostFailed when there is none within the timeout. A kept-alive connection
        the server closed meanwhile is retried once on a new one (the request never reached a handler)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise PostFailed(f"only http:// URLs are posted to, not {url!r}")
        address = (parts.hostname, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = _request(target, parts.netloc, body, headers)
        try:
            async with asyncio.timeout(self._timeout):
                reused = self._take(address)
                if reused is not None:
                    with contextlib.suppress(_Stale):
                        return await self._exchange(address, reused, request)
                return await self._exchange(address, await _open(address), request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                _Stale) as error:
            raise PostFailed(f"{type(error).__name__}: {error}") from None

    async def aclose(self) -> None:
        """Closes every idle connection."""
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()

    def _take(self, address: tuple[str, int]) -> _Connection | None:
        pool = self._idle.get(address)
        while pool:
            connection = pool.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _exchange(self, address: tuple[str, int], connection: _Connection, request: bytes) -> int:
        try:
            connection.writer.write(request)
            status, keep = await _answer(connection.reader)
        except BaseException:
            connection.close()
            raise
        pool = self._idle.setdefault(address, [])
        if keep and len(pool) < self._limit:
            pool.append(connection)
        else:
            connection.close()
        return status


class _Stale(Exception):
    """The server closed a kept-alive connection before answering anything."""


async def _open(address: tuple[str, int]) -> _Connection:
    reader, writer = await asyncio.open_connection(*address, limit=_MAX_HEAD)
    return _Connection(reader, writer)


def _request(target: str, host: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection may be reused); the body is read and dropped."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            raise _Stale() from None
        raise
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    if "chunked" in fields.get("transfer-encoding", "").lower():
        await _chunks(reader)
    elif "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif int(status) not in (204, 304) and not 100 <= int(status) < 200:
        await reader.read()  # no length: the body ends with the connection
        keep = False
    return int(status), keep


async def _chunks(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return
        await reader.readexactly(size + 2)
