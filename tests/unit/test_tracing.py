"""W3C traceparent parsing and formatting, the current span, Kafka record headers and the HTTP middleware."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.pipeline import parse_reference, reference_trace, send_reference
from switchboard import tracing
from switchboard._trace_scan import TraceStep, check_trace_id, render
from switchboard.errors import SwitchboardError

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
W3C_EXAMPLE = f"00-{TRACE}-{SPAN}-01"


def test_the_w3c_example_round_trips() -> None:
    parsed = tracing.parse(W3C_EXAMPLE)
    assert parsed == tracing.TraceParent(TRACE, SPAN, "01")
    assert str(parsed) == W3C_EXAMPLE


def test_bytes_upper_case_and_surrounding_space_are_read() -> None:
    assert tracing.parse(f"  {W3C_EXAMPLE.upper()} ".encode()) == tracing.TraceParent(TRACE, SPAN, "01")


def test_a_later_version_may_append_fields() -> None:
    assert tracing.parse(f"01-{TRACE}-{SPAN}-00-more") == tracing.TraceParent(TRACE, SPAN, "00")


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{TRACE}-{SPAN}", f"00-{TRACE}-{SPAN}-01-extra", f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE[:-1]}g-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-1", f"01-{TRACE}-{SPAN}-01x",
])
def test_invalid_values_are_none(value: str | None) -> None:
    assert tracing.parse(value) is None


def test_an_invalid_header_starts_a_new_trace_and_a_valid_one_is_continued() -> None:
    fresh = tracing.incoming("not a traceparent")
    assert tracing.is_trace_id(fresh.trace_id)
    assert fresh.parent is None
    continued = tracing.incoming(W3C_EXAMPLE)
    assert (continued.trace_id, continued.parent) == (TRACE, SPAN)
    assert continued.span_id != SPAN
    assert tracing.parse(str(continued)) == tracing.TraceParent(TRACE, continued.span_id)


def test_new_traces_differ() -> None:
    assert tracing.new_trace().trace_id != tracing.new_trace().trace_id


def test_use_sets_the_current_span_for_the_block_only() -> None:
    span = tracing.TraceParent(TRACE, SPAN)
    assert tracing.current() is None
    with tracing.use(span):
        assert tracing.current() == span
        assert tracing.parse(tracing.outgoing_headers()[tracing.HEADER]).trace_id == TRACE  # type: ignore[union-attr]
    assert tracing.current() is None
    assert tracing.outgoing_headers() == {}


def test_a_record_is_a_child_span_of_the_current_one() -> None:
    with tracing.use(tracing.TraceParent(TRACE, SPAN)):
        headers = dict(tracing.record_headers())
    span = tracing.parse(headers[tracing.HEADER])
    assert span is not None
    assert span.trace_id == TRACE
    assert span.span_id != SPAN
    assert headers[tracing.PARENT_HEADER] == SPAN.encode()
    assert tracing.LINK_HEADER not in headers
    assert tracing.from_record_headers(list(headers.items())) == tracing.TraceParent(TRACE, span.span_id, "01", SPAN)


def test_a_record_of_another_trace_starts_there_and_links_the_current_span() -> None:
    other = "a" * 32
    with tracing.use(tracing.TraceParent(TRACE, SPAN)):
        headers = dict(tracing.record_headers(other))
    assert tracing.parse(headers[tracing.HEADER]).trace_id == other  # type: ignore[union-attr]
    assert tracing.PARENT_HEADER not in headers
    assert headers[tracing.LINK_HEADER] == f"00-{TRACE}-{SPAN}-01".encode()


def test_no_trace_means_no_headers_and_an_envelope_trace_is_a_fallback() -> None:
    assert tracing.record_headers() == []
    assert tracing.record_headers("not-a-trace") == []
    assert tracing.from_record_headers(None) is None
    assert tracing.from_record_headers([("traceparent", b"junk")], TRACE).trace_id == TRACE  # type: ignore[union-attr]
    assert tracing.from_record_headers({"other": b"x"}, None) is None


def test_continuing_keeps_the_current_span_of_the_same_trace() -> None:
    span = tracing.TraceParent(TRACE, SPAN)
    with tracing.use(span):
        assert tracing.continuing(TRACE) is span
        assert tracing.continuing(None) is span
        assert tracing.continuing("b" * 32).trace_id == "b" * 32  # type: ignore[union-attr]


def test_the_send_reference_carries_the_trace_and_older_references_still_parse() -> None:
    contact, message = "62a21180-ff99-5a54-9a67-2bee6496d68b", "c7cca417-c818-5a6e-a98c-00bcdc7103e9"
    traced = send_reference(contact, message, TRACE)
    assert traced == f"{contact}.{message}.{TRACE}"
    assert parse_reference(traced) == (contact, message)
    assert reference_trace(traced) == TRACE
    assert send_reference(contact, message) == f"{contact}.{message}"
    assert send_reference(contact, message, "0" * 32) == f"{contact}.{message}"
    assert reference_trace(f"{contact}.{message}") is None
    assert reference_trace(f"{contact}.{message}.nottrace") is None
    assert parse_reference(f"{contact}.{message}.{TRACE}.x") is None


def test_trace_ids_for_the_command_line() -> None:
    assert check_trace_id(TRACE.upper()) == TRACE
    assert check_trace_id(W3C_EXAMPLE) == TRACE
    with pytest.raises(SwitchboardError, match="not a trace id: expected 32 hex digits"):
        check_trace_id("1234")
    with pytest.raises(SwitchboardError):
        check_trace_id("0" * 32)


async def test_the_middleware_continues_or_starts_a_trace_and_answers_with_it() -> None:
    seen: list[tracing.TraceParent | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(tracing.current())
        await asyncio.sleep(0)
        if request.query.get("fail"):
            raise web.HTTPBadRequest()
        return web.Response(text="ok")

    app = web.Application(middlewares=[tracing.http_middleware])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        continued = await client.get("/", headers={tracing.HEADER: W3C_EXAMPLE})
        fresh = await client.get("/", headers={tracing.HEADER: "bogus"})
        failed = await client.get("/?fail=1", headers={tracing.HEADER: W3C_EXAMPLE})
    answered = tracing.parse(continued.headers[tracing.HEADER])
    assert seen[0] is not None
    assert answered == tracing.TraceParent(TRACE, seen[0].span_id)  # the span that served the request
    assert seen[0].parent == SPAN
    new = tracing.parse(fresh.headers[tracing.HEADER])
    assert new is not None
    assert new.trace_id != TRACE
    assert failed.status == 400
    assert tracing.parse(failed.headers[tracing.HEADER]).trace_id == TRACE  # type: ignore[union-attr]
    assert tracing.current() is None


def test_the_trace_table_names_each_record_and_how_it_was_found() -> None:
    steps = [TraceStep("2026-03-01T09:30:00.000+00:00", "sb.events.business", "2@7", "OrderPlaced", "o-1", SPAN,
                       "1111111111111111", "traceparent"),
             TraceStep("2026-03-01T09:30:02.000+00:00", "sb.commands", "0@3", "receipt", "c-1", SPAN, None, "link")]
    table = render(steps).splitlines()
    assert table[0].split() == ["2026-03-01T09:30:00.000+00:00", "sb.events.business", "2@7", "OrderPlaced", "span",
                                SPAN, "parent", "1111111111111111", "key", "o-1"]
    assert table[1].endswith("(link)")
    assert [step["position"] for step in json.loads(render(steps, as_json=True))] == ["2@7", "0@3"]
    assert render([]) == "no record carries this trace"
