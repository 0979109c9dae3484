"""A local Twilio Messages API: the create endpoint, its auth and validation, and signed status callbacks back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from connectors._privacy import mask_phone
from connectors._simulator_http import PostFailed, WebhookPoster
from connectors.twilio_sms import SIGNATURE_HEADER, twilio_signature
from switchboard.serving import Served, serve

__all__ = ["TwilioCounters", "TwilioSimulator", "TwilioSimulatorConfig"]

_log = logging.getLogger(__name__)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_API = "2010-04-01"


@dataclass(frozen=True)
class TwilioSimulatorConfig:
    """One account; each accepted message gets `statuses` posted to its StatusCallback, `interval` apart."""

    account_sid: str
    auth_token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, read it back from TwilioSimulator.url
    statuses: tuple[str, ...] = ("sent", "delivered")
    interval: float = 0.05
    undeliverable: frozenset[str] = frozenset()  # numbers whose last status is `undelivered`, ErrorCode 30003
    callback_attempts: int = 3


@dataclass
class TwilioCounters:
    """What the simulator did, for tests and benchmarks."""

    requests: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # Twilio error code -> count
    callbacks_posted: int = 0
    callback_failures: int = 0


class TwilioSimulator:
    """`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio answers it, on a local port."""

    def __init__(self, config: TwilioSimulatorConfig) -> None:
        self.config = config
        self.counters = TwilioCounters()
        self.messages: dict[str, dict[str, str]] = {}  # sid -> the create request's form
        self._sids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._poster = WebhookPoster(limit=16, timeout=5.0)
        self._served: Served | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL to give the driver as `base_url`."""
        if self._url is None:
            raise RuntimeError("the Twilio simulator is not started")
        return self._url

    @property
    def pending_callbacks(self) -> int:
        """Messages whose status callbacks are still to be posted."""
        return len(self._tasks)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(f"/{_API}/Accounts/{{account}}/Messages.json", self._create)
        self._served = await serve(app, self.config.host, self.config.port, access_log=None)
        self._url = self._served.url
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._poster.aclose()
        if self._served is not None:
            await self._served.close()

    async def _create(self, request: web.Request) -> web.Response:
        self.counters.requests += 1
        form = dict(parse_qsl(await request.text(), keep_blank_values=True))
        refusal = self._refusal(request, form)
        if refusal is not None:
            status, code, message = refusal
            self.counters.refused[code] += 1
            return web.json_response({"code": code, "message": message, "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status=status)
        sid = f"SM{next(self._sids):032x}"
        self.messages[sid] = form
        self.counters.accepted += 1
        if form.get("StatusCallback"):
            task = asyncio.create_task(self._callbacks(sid, form))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(self._resource(sid, form), status=201)

    def _refusal(self, request: web.Request, form: Mapping[str, str]) -> tuple[int, int, str] | None:
        """(HTTP status, Twilio code, message) of a request Twilio would refuse, else None."""
        expected = base64.b64encode(f"{self.config.account_sid}:{self.config.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}" or \
                request.match_info["account"] != self.config.account_sid:
            return 401, 20003, "Authenticate"
        if not _E164.match(form.get("To", "")):
            return 400, 21211, f"The 'To' number {mask_phone(form.get('To', ''))} is not a valid phone number."
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return 400, 21603, "The 'From' phone number is required."
        if not form.get("Body"):
            return 400, 21602, "Message body is required."
        return None

    def _resource(self, sid: str, form: Mapping[str, str]) -> dict[str, Any]:
        return {"sid": sid, "account_sid": self.config.account_sid, "to": form["To"], "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"), "body": form["Body"], "status": "queued",
                "num_segments": "1", "direction": "outbound-api", "api_version": _API,
                "uri": f"/{_API}/Accounts/{self.config.account_sid}/Messages/{sid}.json"}

    async def _callbacks(self, sid: str, form: Mapping[str, str]) -> None:
        statuses = list(self.config.statuses)
        if form["To"] in self.config.undeliverable:
            statuses[-1] = "undelivered"
        for status in statuses:
            await asyncio.sleep(self.config.interval)
            await self._post(form["StatusCallback"], self._callback_form(sid, form, status))

    def _callback_form(self, sid: str, form: Mapping[str, str], status: str) -> list[tuple[str, str]]:
        fields = [("MessageSid", sid), ("SmsSid", sid), ("MessageStatus", status), ("SmsStatus", status),
                  ("AccountSid", self.config.account_sid), ("To", form["To"]),
                  ("From", form.get("From") or form.get("MessagingServiceSid", "")), ("ApiVersion", _API)]
        if status == "undelivered":
            fields += [("ErrorCode", "30003"), ("ErrorMessage", "Unreachable destination handset")]
        return fields

    async def _post(self, url: str, fields: list[tuple[str, str]]) -> None:
        """Signed over the exact callback URL and the parameters, as Twilio signs; a few attempts, then dropped."""
        body = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1",
                   SIGNATURE_HEADER: twilio_signature(url, fields, self.config.auth_token)}
        for _ in range(self.config.callback_attempts):
            try:
                if 200 <= await self._poster.post(url, body, headers) < 300:
                    self.counters.callbacks_posted += 1
                    return
            except PostFailed as error:
                _log.debug("status callback to %s failed: %s", url, error)
            await asyncio.sleep(self.config.interval)
        self.counters.callback_failures += 1
