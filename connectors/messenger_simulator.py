"""A local Messenger Send API: its auth and validation, and the page's signed webhooks back (echo, delivery, read)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connectors._hub import SIGNATURE_HEADER, hub_signature
from connectors._simulator_base import ProviderSimulator
from connectors.messenger import GRAPH_API_VERSION, TEXT_LIMIT

__all__ = ["MessengerCounters", "MessengerSimulator", "MessengerSimulatorConfig"]



@dataclass(frozen=True)
class MessengerSimulatorConfig:
    """One page; each accepted message is echoed, then delivered and read, `interval` apart, by webhooks to
    `webhook_url` signed with `app_secret`. Deliveries name their mids unless `delivery_mids` is False (Meta may
    send only the watermark); reads are always a watermark, as Meta's are."""

    page_id: str
    page_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    webhook_url: str = ""
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, read it back from MessengerSimulator.url
    interval: float = 0.05
    delivery_mids: bool = True
    unavailable: frozenset[str] = frozenset()  # PSIDs answered with (#551) "This person isn't available right now"
    webhook_attempts: int = 3


@dataclass
class MessengerCounters:
    """What the simulator did, for tests and benchmarks."""

    requests: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # Graph error code -> count
    webhooks_posted: int = 0
    webhook_failures: int = 0


class MessengerSimulator(ProviderSimulator):
    """`POST /{version}/me/messages` as the Graph API answers it, on a local port."""

    provider = "Messenger"

    def __init__(self, config: MessengerSimulatorConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self.counters = MessengerCounters()
        self.messages: dict[str, dict[str, Any]] = {}  # mid -> the send request's body
        self._mids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        """The Send API."""
        app.router.add_post("/{version}/me/messages", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        self.counters.requests += 1
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        refusal = self._refusal(request, body)
        if refusal is not None:
            status, code, subcode, message = refusal
            self.counters.refused[code] += 1
            error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                                     "fbtrace_id": f"Asim{self.counters.requests}"}
            if subcode is not None:
                error["error_subcode"] = subcode
            return web.json_response({"error": error}, status=status)
        assert isinstance(body, dict)
        mid = f"m_sim{next(self._mids):024d}"
        self.messages[mid] = body
        self.counters.accepted += 1
        if self.config.webhook_url:
            self._spawn(self._webhooks(mid, body))
        return web.json_response({"recipient_id": body["recipient"]["id"], "message_id": mid})

    def _refusal(self, request: web.Request, body: Any) -> tuple[int, int, int | None, str] | None:
        """(HTTP status, Graph code, subcode, message) of a call Meta would refuse, else None."""
        if request.headers.get("Authorization") != f"Bearer {self.config.page_token}":
            return 401, 190, 463, "Error validating access token: the token is invalid."
        if request.match_info["version"] != GRAPH_API_VERSION:
            return 400, 2500, None, f"Unknown path components: /{request.match_info['version']}/me/messages"
        recipient = body.get("recipient") if isinstance(body, dict) else None
        text = (body.get("message") or {}).get("text") if isinstance(body, dict) else None
        if not isinstance(recipient, dict) or not recipient.get("id"):
            return 400, 100, None, "(#100) The parameter recipient is required"
        if not isinstance(text, str) or not 0 < len(text) <= TEXT_LIMIT:
            return 400, 100, None, f"(#100) Param message[text] must be 1-{TEXT_LIMIT} characters"
        if recipient["id"] in self.config.unavailable:
            return 400, 551, 1545041, "(#551) This person isn't available right now."
        return None

    async def _webhooks(self, mid: str, body: dict[str, Any]) -> None:
        """The echo (our metadata back), then the delivery and the read, each a separate signed POST."""
        user, message = body["recipient"]["id"], body["message"]
        echo = {"mid": mid, "is_echo": True, "app_id": 1, "text": message["text"]}
        if message.get("metadata"):
            echo["metadata"] = message["metadata"]
        page, to_page = {"id": self.config.page_id}, {"recipient": {"id": self.config.page_id}}
        await self._post_event({"sender": page, "recipient": {"id": user}, "timestamp": _now_ms(), "message": echo})
        await asyncio.sleep(self.config.interval)
        delivery: dict[str, Any] = {"watermark": _now_ms()}
        if self.config.delivery_mids:
            delivery["mids"] = [mid]
        await self._post_event({"sender": {"id": user}, **to_page, "delivery": delivery})
        await asyncio.sleep(self.config.interval)
        await self._post_event({"sender": {"id": user}, **to_page, "timestamp": _now_ms(),
                                "read": {"watermark": _now_ms()}})

    async def _post_event(self, event: dict[str, Any]) -> None:
        """One page notification with one event; a few attempts, then dropped (counted)."""
        document = {"object": "page", "entry": [{"id": self.config.page_id, "time": _now_ms(), "messaging": [event]}]}
        raw = json.dumps(document).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(raw, self.config.app_secret)}
        if await self._post(self.config.webhook_url, raw, headers, self.config.webhook_attempts, self.config.interval):
            self.counters.webhooks_posted += 1
        else:
            self.counters.webhook_failures += 1


def _now_ms() -> int:
    return int(time.time() * 1000)
