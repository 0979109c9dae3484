"""The one narrow way drivers reach the network: Transport, with an aiohttp and an in-memory implementation."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import aiohttp

from connectors._errors import TransportError, TransportTimeout
from switchboard.tracing import outgoing_headers

__all__ = ["AiohttpTransport", "InMemoryTransport", "Transport", "TransportRequest", "TransportResponse"]


class TransportResponse(NamedTuple):
    """(status, headers, body) as received; header names as the server sent them."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP request; raises TransportError (or TransportTimeout) when no response arrives."""

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> TransportResponse:
        """Performs the request and returns the response, whatever its status."""
        ...

    async def aclose(self) -> None:
        """Releases connections."""
        ...


class AiohttpTransport:
    """Transport over one aiohttp ClientSession, created on first use inside the running loop."""

    def __init__(self, *, timeout: float = 10.0, session: aiohttp.ClientSession | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> TransportResponse:
        """Performs the request; a timeout may leave the request delivered, a refused connection does not."""
        session = self._ensure_session()
        try:
            # The current trace travels with every call (W3C traceparent), so a provider's side can be joined up.
            sent = {**outgoing_headers(), **headers}
            async with session.request(method, url, headers=sent, data=body, timeout=self._timeout) as reply:
                payload = await reply.read()
                return TransportResponse(reply.status, dict(reply.headers), payload)
        except TimeoutError as error:
            raise TransportTimeout(f"{method} timed out after {self._timeout.total} s") from error
        except aiohttp.ClientConnectorError as error:
            raise TransportError(f"cannot connect: {error.os_error}", maybe_sent=False) from error
        except aiohttp.ClientError as error:
            raise TransportError(f"request failed: {type(error).__name__}", maybe_sent=True) from error

    async def aclose(self) -> None:
        """Closes the session if this transport created it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """A request the in-memory transport received."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


Handler = Callable[[TransportRequest], TransportResponse | Awaitable[TransportResponse]]


@dataclass
class InMemoryTransport:
    """A Transport answering from a handler function or a script of responses; records every request."""

    handler: Handler | None = None
    script: list[TransportResponse | TransportError] = field(default_factory=list)
    requests: list[TransportRequest] = field(default_factory=list)
    closed: bool = False

    @classmethod
    def scripted(cls, responses: Iterable[TransportResponse | TransportError]) -> InMemoryTransport:
        """A transport that answers with these responses (or raises these errors) in order."""
        return cls(script=list(responses))

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> TransportResponse:
        """Records the request, then answers from the script first, else from the handler."""
        request = TransportRequest(method, url, dict(headers), body)
        self.requests.append(request)
        await asyncio.sleep(0)  # a real transport always yields; so does this one, to surface ordering bugs
        if self.script:
            scripted = self.script.pop(0)
            if isinstance(scripted, TransportError):
                raise scripted
            return scripted
        if self.handler is None:
            raise TransportError("InMemoryTransport has no scripted response and no handler", maybe_sent=False)
        answer = self.handler(request)
        return await answer if inspect.isawaitable(answer) else answer

    async def aclose(self) -> None:
        """Marks the transport closed."""
        self.closed = True
