"""The simulator's send endpoint validates like Meta and answers in Meta's shapes; its command line works."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors import (
    Buttons,
    Content,
    ListMenu,
    ListRow,
    ListSection,
    Media,
    MediaKind,
    OutboundMessage,
    ReplyButton,
    Template,
    Text,
    TextParam,
)
from connectors._simulator_validation import validate_send_body
from connectors.whatsapp import GRAPH_API_VERSION, build_send_body
from connectors.whatsapp_simulator import (
    DEFAULT_PHONE_NUMBER_ID,
    WhatsAppSimulator,
    _parser,
    config_from_args,
)
from tests.contract.whatsapp_support import ACCESS_TOKEN

Json = dict[str, Any]
TEXT: Json = {"messaging_product": "whatsapp", "to": "+15551234567", "type": "text", "text": {"body": "hi"}}


class Client:
    def __init__(self, simulator: WhatsAppSimulator, session: aiohttp.ClientSession) -> None:
        self.simulator, self.session = simulator, session

    async def post(self, body: Json | bytes, *, token: str | None = ACCESS_TOKEN, version: str = GRAPH_API_VERSION,
                   phone_number_id: str = DEFAULT_PHONE_NUMBER_ID) -> tuple[int, Json]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        url = f"{self.simulator.url}/{version}/{phone_number_id}/messages"
        async with self.session.post(url, data=data, headers=headers) as answer:
            return answer.status, await answer.json()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    simulator = WhatsAppSimulator(access_token=ACCESS_TOKEN, enforce_window=False, pair_window=None,
                                  templates=frozenset({("order_update", "en_US")}))
    await simulator.start()
    async with aiohttp.ClientSession() as session:
        yield Client(simulator, session)
    await simulator.stop()


def with_(base: Json, **changes: Any) -> Json:
    return {**base, **changes}


async def test_success_answer_has_meta_shape(client: Client) -> None:
    status, body = await client.post(TEXT)
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+15551234567", "wa_id": "15551234567"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.")
    assert message["message_status"] == "accepted"
    assert client.simulator.sent_messages[0].wamid == message["id"]


async def test_error_answer_has_meta_shape(client: Client) -> None:
    status, body = await client.post(with_(TEXT, text={"body": ""}))
    assert status == 400
    error = body["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["code"] == 131008
    assert error["message"].startswith("(#131008) ")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "text['body']" in error["error_data"]["details"]


async def test_mark_as_read(client: Client) -> None:
    assert await client.post({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"}) == (
        200, {"success": True})


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"token": None}, 401, 0),
    ({"token": "wrong"}, 401, 190),
    ({"phone_number_id": "999"}, 400, 100),
    ({"version": "latest"}, 400, 100),
])
async def test_path_and_auth_errors(client: Client, kwargs: Json, status: int, code: int) -> None:
    answer_status, body = await client.post(TEXT, **kwargs)
    assert (answer_status, body["error"]["code"]) == (status, code)
    assert client.simulator.counters.rejected[code] == 1


def _buttons(count: int, title: str = "ok") -> Json:
    return {"type": "button", "body": {"text": "pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": title}} for i in range(count)]}}


def _list(rows: int) -> Json:
    return {"type": "list", "body": {"text": "pick"},
            "action": {"button": "Stores", "sections": [{"title": "s", "rows": [
                {"id": f"r{i}", "title": "row"} for i in range(rows)]}]}}


def _template(**changes: Any) -> Json:
    return with_(TEXT, type="template", template={"name": "order_update", "language": {"code": "en_US"}, **changes})


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, 100),
    ({k: v for k, v in TEXT.items() if k != "messaging_product"}, 400, 131008),
    (with_(TEXT, messaging_product="sms"), 400, 100),
    ({k: v for k, v in TEXT.items() if k != "to"}, 400, 131008),
    (with_(TEXT, recipient_type="crowd"), 400, 100),
    (with_(TEXT, type="hologram"), 400, 100),
    (with_(TEXT, type="image"), 400, 131008),
    (with_(TEXT, text={"body": "x" * 4097}), 400, 131009),
    (with_(TEXT, biz_opaque_callback_data="x" * 513), 400, 100),
    (with_(TEXT, context={"id": "wamid"}), 400, 100),
    (with_(TEXT, type="image", image={"link": "https://x/a.jpg", "id": "1"}), 400, 131009),
    (with_(TEXT, type="image", image={"link": "ftp://x/a.jpg"}), 400, 131009),
    (with_(TEXT, type="audio", audio={"id": "1", "caption": "no"}), 400, 131009),
    (with_(TEXT, type="interactive", interactive=_buttons(4)), 400, 131009),
    (with_(TEXT, type="interactive", interactive=_buttons(1, title="x" * 21)), 400, 131009),
    (with_(TEXT, type="interactive", interactive=_list(11)), 400, 131009),
    (with_(TEXT, type="interactive", interactive={"type": "button", "body": {"text": "x"}}), 400, 131008),
    (_template(language=None), 400, 131008),
    (_template(components=[{"type": "body", "parameters": [
        {"type": "text", "text": "a", "parameter_name": "x"}, {"type": "text", "text": "b"}]}]), 400, 132012),
    (_template(name="no_such_template"), 404, 132001),
])
async def test_meta_validation(client: Client, body: Json | bytes, status: int, code: int) -> None:
    answer_status, answer = await client.post(body)
    assert (answer_status, answer["error"]["code"]) == (status, code), answer
    assert client.simulator.counters.sent == 0


SENDABLE: list[Content] = [
    Text("hello"),
    Media(MediaKind.IMAGE, link="https://cdn.example.com/x.jpg", caption="c"),
    Media(MediaKind.DOCUMENT, media_id="123", filename="a.pdf"),
    Media(MediaKind.STICKER, media_id="9"),
    Template("order_update", "en_US", body=(TextParam("Ada", name="first_name"),),
             header=Media(MediaKind.VIDEO, media_id="7")),
    Buttons("pick", (ReplyButton("a", "A"), ReplyButton("b", "B")), header="h", footer="f"),
    ListMenu("pick", "Stores", (ListSection("N", (ListRow("1", "Oslo", "d"),)),
                                ListSection("S", (ListRow("2", "Rome"),)))),
]


@pytest.mark.parametrize("content", SENDABLE, ids=lambda c: type(c).__name__)
def test_every_body_the_driver_builds_passes_the_simulators_validation(content: Content) -> None:
    body = build_send_body(OutboundMessage("m-1", DEFAULT_PHONE_NUMBER_ID, "+15551234567", content))
    assert validate_send_body(json.loads(json.dumps(body))) == body["type"]


def test_command_line_options_become_the_config() -> None:
    args = _parser().parse_args(["--port", "0", "--seed", "9", "--mps", "0", "--pair-window", "2",
                                 "--undeliverable", "+1 555 000 9999", "--error-rate", "0.1", "--no-window",
                                 "--phone-number", "123=15550001234", "--webhook-url", "http://127.0.0.1:1/h"])
    config = config_from_args(args, {"SWITCHBOARD_SIMULATOR_APP_SECRET": "s3cret"})
    assert (config.port, config.seed, config.mps_limit, config.pair_window) == (0, 9, None, 2.0)
    assert config.undeliverable == frozenset({"15550009999"})
    assert (config.enforce_window, config.error_rate, config.app_secret) == (False, 0.1, "s3cret")
    assert config.phone_numbers == {"123": "15550001234"}
    assert config.access_token is None
    assert "s3cret" not in repr(config)


async def test_main_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.whatsapp_simulator", "--port", "0", "--no-window",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    url = banner.split(" at ", 1)[1].split(f"/{GRAPH_API_VERSION}/", 1)[0]
    endpoint = f"{url}/{GRAPH_API_VERSION}/{DEFAULT_PHONE_NUMBER_ID}/messages"
    async with aiohttp.ClientSession() as session, \
            session.post(endpoint, json=TEXT, headers={"Authorization": "Bearer any"}) as answer:
        assert answer.status == 200
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    rest = (await process.stdout.read()).decode()
    assert "simulator stopped" in rest
    assert "sent=1" in rest
