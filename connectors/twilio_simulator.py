"""A local Twilio Messages API: the create endpoint, its auth and validation, and signed status callbacks back."""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from connectors._privacy import mask_phone
from connectors._simulator_base import ProviderSimulator
from connectors.twilio_sms import SIGNATURE_HEADER, twilio_signature

__all__ = ["TwilioCounters", "TwilioSimulator", "TwilioSimulatorConfig"]

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


class TwilioSimulator(ProviderSimulator):
    """`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio answers it, on a local port."""

    provider = "Twilio"

    def __init__(self, config: TwilioSimulatorConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self.counters = TwilioCounters()
        self.messages: dict[str, dict[str, str]] = {}  # sid -> the create request's form
        self._sids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        """The Messages create endpoint."""
        app.router.add_post(f"/{_API}/Accounts/{{account}}/Messages.json", self._create)

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
            self._spawn(self._callbacks(sid, form))
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
            await self._post_callback(form["StatusCallback"], self._callback_form(sid, form, status))

    def _callback_form(self, sid: str, form: Mapping[str, str], status: str) -> list[tuple[str, str]]:
        fields = [("MessageSid", sid), ("SmsSid", sid), ("MessageStatus", status), ("SmsStatus", status),
                  ("AccountSid", self.config.account_sid), ("To", form["To"]),
                  ("From", form.get("From") or form.get("MessagingServiceSid", "")), ("ApiVersion", _API)]
        if status == "undelivered":
            fields += [("ErrorCode", "30003"), ("ErrorMessage", "Unreachable destination handset")]
        return fields

    async def _post_callback(self, url: str, fields: list[tuple[str, str]]) -> None:
        """Signed over the exact callback URL and the parameters, as Twilio signs; a few attempts, then dropped."""
        body = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1",
                   SIGNATURE_HEADER: twilio_signature(url, fields, self.config.auth_token)}
        if await self._post(url, body, headers, self.config.callback_attempts, self.config.interval):
            self.counters.callbacks_posted += 1
        else:
            self.counters.callback_failures += 1
