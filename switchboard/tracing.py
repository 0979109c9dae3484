"""W3C trace context for requests and Kafka records: parse, format, the current trace, and the record headers."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.web_log import AccessLogger as _AiohttpAccessLogger

__all__ = [
    "HEADER",
    "LINK_HEADER",
    "PARENT_HEADER",
    "REQUEST_SPAN",
    "AccessLogger",
    "TraceParent",
    "continuing",
    "current",
    "from_record_headers",
    "http_middleware",
    "incoming",
    "is_trace_id",
    "new_trace",
    "outgoing_headers",
    "parse",
    "record_headers",
    "use",
]

HEADER: Final = "traceparent"
PARENT_HEADER: Final = "sb-parent-span"  # the span of the stage that produced the record (W3C has no field for it)
LINK_HEADER: Final = "sb-trace-link"  # another trace this record continues from (a receipt's webhook)

_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_SAMPLED: Final = "01"
_random = random.Random()


@dataclass(frozen=True)
class TraceParent:
    """One span of a trace: `00-<trace id>-<span id>-<flags>`; `parent` is the span it was started from."""

    trace_id: str
    span_id: str
    flags: str = _SAMPLED
    parent: str | None = None

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceParent:
        """A new span of the same trace, started from this one."""
        return TraceParent(self.trace_id, _span_id(), self.flags, self.span_id)


def parse(value: str | bytes | None) -> TraceParent | None:
    """The traceparent header's value, or None if it is absent or not valid W3C (version 00 or a later one)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value:
        return None
    value = value.strip().lower()
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    # Version ff is forbidden; version 00 is exactly 55 characters, later versions may append fields after a dash.
    if version == "ff" or (version == "00" and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    if not is_trace_id(trace_id) or span_id == "0" * 16:
        return None
    return TraceParent(trace_id, span_id, flags)


def is_trace_id(value: str) -> bool:
    """32 lowercase hex digits, not all zero."""
    return bool(_TRACE_ID.fullmatch(value)) and value != "0" * 32


def new_trace() -> TraceParent:
    """The root span of a new trace."""
    return TraceParent(secrets.token_hex(16), _span_id())


def incoming(value: str | bytes | None) -> TraceParent:
    """The span serving a request: a child of a valid incoming traceparent, else the root of a new trace."""
    parent = parse(value)
    return parent.child() if parent is not None else new_trace()


_CURRENT: ContextVar[TraceParent | None] = ContextVar("switchboard_trace", default=None)


def current() -> TraceParent | None:
    """The span this task is working in, if any."""
    return _CURRENT.get()


@contextmanager
def use(span: TraceParent | None) -> Iterator[TraceParent | None]:
    """Makes `span` the current one for the block (None: no trace), then restores the previous one."""
    token = _CURRENT.set(span)
    try:
        yield span
    finally:
        _CURRENT.reset(token)


def continuing(trace_id: str | None) -> TraceParent | None:
    """The span to work in for trace `trace_id`: the current one if it is of that trace, else a new span of it
    (a receipt continuing its message's trace); the current one when `trace_id` is None or not valid."""
    span = current()
    if trace_id is None or not is_trace_id(trace_id) or (span is not None and span.trace_id == trace_id):
        return span
    return TraceParent(trace_id, _span_id())


def outgoing_headers() -> dict[str, str]:
    """HTTP headers carrying the current trace to a server we call (a child span per call); empty without one."""
    span = current()
    return {} if span is None else {HEADER: str(span.child())}


def record_headers(trace_id: str | None = None, *, link: TraceParent | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers for a record produced now: a child span of the current one, or of trace `trace_id` if given.

    A record of another trace than the current span's (a receipt continuing its message's trace) starts a span
    of that trace with no parent; `link` names the span it came from. Without any trace: no headers.
    """
    span = current()
    if trace_id is not None and (span is None or span.trace_id != trace_id):
        if not is_trace_id(trace_id):
            return []
        link = link or span
        record = TraceParent(trace_id, _span_id())
    elif span is None:
        return []
    else:
        record = span.child()
    headers = [(HEADER, str(record).encode())]
    if record.parent is not None:
        headers.append((PARENT_HEADER, record.parent.encode()))
    if link is not None:
        headers.append((LINK_HEADER, str(link).encode()))
    return headers


def from_record_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
                        trace_id: str | None = None) -> TraceParent | None:
    """The span a consumed record carries (traceparent header, with its parent span if recorded); without one, a
    new span of `trace_id` (a record from before tracing, or from a producer that sets only the envelope)."""
    if not headers:
        return TraceParent(trace_id, _span_id()) if trace_id and is_trace_id(trace_id) else None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, bytes] = {}
    for name, value in pairs:
        if name in (HEADER, PARENT_HEADER) and value is not None:
            found[name] = bytes(value)
    span = parse(found.get(HEADER))
    if span is None:
        return from_record_headers(None, trace_id)
    parent = found.get(PARENT_HEADER)
    return TraceParent(span.trace_id, span.span_id, span.flags, parent.decode("ascii", "replace") if parent else None)


def _span_id() -> str:
    # One per record produced: the process's PRNG (seeded from the OS, reseeded in a forked child) is enough for
    # ids that must only differ, and is far cheaper than a system call each time; trace ids still use `secrets`.
    span = _random.getrandbits(64)
    return f"{span:016x}" if span else _span_id()


REQUEST_SPAN: Final = web.RequestKey("trace_span", TraceParent)  # the span serving a request


@web.middleware
async def http_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """aiohttp middleware: the request runs in a span continuing its `traceparent` (or a new trace), and every
    answer, errors included, carries that span back in its own `traceparent` header."""
    span = incoming(request.headers.get(HEADER))
    request[REQUEST_SPAN] = span
    with use(span):
        try:
            response = await handler(request)
        except web.HTTPException as http:
            http.headers[HEADER] = str(span)
            raise
    if not response.prepared:
        response.headers[HEADER] = str(span)
    return response



class AccessLogger(_AiohttpAccessLogger):
    """aiohttp's access log line, written in the span that served the request (it is logged after the handler,
    outside the middleware's context): `web.AppRunner(app, access_log_class=AccessLogger)`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        span = request.get(REQUEST_SPAN) if isinstance(request, web.Request) else None
        with use(span):
            super().log(request, response, time)
