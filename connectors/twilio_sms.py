"""SMS through Twilio's Programmable Messaging: send, Twilio error codes, signed form-encoded status callbacks.

Send: `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `From` (or
`MessagingServiceSid` when the sender starts with `MG`), `Body` and `StatusCallback`, with HTTP basic auth (account
SID, auth token). Twilio answers 201 with the Message resource (`sid`, `status` "queued").

Callbacks (status callbacks and incoming SMS alike) are form-encoded. `X-Twilio-Signature` is
base64(HMAC-SHA1(auth token, URL + every POST parameter name and value, sorted by name)), where URL is the exact
public URL Twilio posted to: the `webhook_url` setting's scheme, host and path with the request's own query
string, which the receiver passes along (`webhook_url` must be configured as the number's incoming-message URL).
Status callback bodies carry nothing of ours, so each send's `StatusCallback` is `webhook_url` with our send
reference added (`sb_ref=`); Twilio signs that URL, and the normaliser takes the reference from the query
(`callback_reference`). The parsed items themselves have no reference (`receipt_message_id` False).
`queued`/`accepted`/`sending`/`scheduled` callbacks are intermediate and become UnhandledItems (kept, not receipts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Self
from urllib.parse import parse_qsl, urlencode

from connectors._callback_reference import query_of, signed_url, url_with_reference
from connectors._driver import Capabilities, ChannelDriver, classify_local, retry_by_http_status
from connectors._errors import InvalidMessage, MalformedWebhook, SignatureInvalid, SignatureMissing
from connectors._http_common import (
    failed,
    json_or_none,
    local_failure,
    log_result,
    parse_retry_after,
    request_or_failure,
)
from connectors._hub import header_value
from connectors._items import InboundItem, InboundMedia, NormalizedItem, ReceiptItem, ReceiptStatus, UnhandledItem
from connectors._messages import OutboundMessage, Text
from connectors._privacy import MissingSecret, SecretSource
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import AiohttpTransport, Transport, TransportResponse

__all__ = ["DEFAULT_BASE_URL", "ENV_ACCOUNT_SID", "ENV_AUTH_TOKEN", "ENV_WEBHOOK_URL", "SIGNATURE_HEADER", "TEXT_LIMIT",
           "TWILIO_ERROR_CODES", "TwilioSmsConfig", "TwilioSmsDriver", "build_send_form", "parse_twilio_webhook",
           "twilio_signature"]

DEFAULT_BASE_URL: Final = "https://api.twilio.com"
ENV_ACCOUNT_SID: Final = "SWITCHBOARD_TWILIO_ACCOUNT_SID"
ENV_AUTH_TOKEN: Final = "SWITCHBOARD_TWILIO_AUTH_TOKEN"
# Not a secret: where the receiver is reachable, for `switchboard receiver`, which builds drivers from empty settings.
ENV_WEBHOOK_URL: Final = "SWITCHBOARD_TWILIO_WEBHOOK_URL"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
TEXT_LIMIT: Final = 1600  # characters of Body (Twilio splits into segments up to this)
CHANNEL: Final = "sms"  # the aggregates' Channel.SMS
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SETTINGS = frozenset({"base_url", "timeout", "webhook_url", "account_sid_env", "auth_token_env"})

# Twilio error code -> outcome; works on send answers and on ErrorCode of failed/undelivered callbacks.
TWILIO_ERROR_CODES: Final[Mapping[str, Outcome]] = {
    "20003": Outcome.STOP_ACCOUNT,  # authentication failed (account SID / auth token)
    "20005": Outcome.STOP_ACCOUNT,  # account not active
    "20429": Outcome.RETRY_LATER,  # too many requests
    "21211": Outcome.PERMANENT_FAILURE,  # invalid 'To' phone number
    "21408": Outcome.PERMANENT_FAILURE,  # permission to send to this region not enabled
    "21606": Outcome.STOP_ACCOUNT,  # the 'From' number is not a valid SMS-capable number of this account
    "21610": Outcome.PERMANENT_FAILURE,  # recipient unsubscribed (replied STOP): revoke consent
    "21612": Outcome.PERMANENT_FAILURE,  # 'To' not reachable from this 'From' (route)
    "21614": Outcome.PERMANENT_FAILURE,  # 'To' is not a mobile number
    "30001": Outcome.RETRY_LATER,  # queue overflow
    "30002": Outcome.STOP_ACCOUNT,  # account suspended
    "30003": Outcome.RETRY_RECIPIENT_LATER,  # unreachable handset (off or out of coverage): this recipient later
    "30004": Outcome.PERMANENT_FAILURE,  # message blocked (the recipient blocks or the carrier refuses)
    "30005": Outcome.PERMANENT_FAILURE,  # unknown destination handset
    "30006": Outcome.PERMANENT_FAILURE,  # landline or unreachable carrier
    "30007": Outcome.PERMANENT_FAILURE,  # carrier filtering (content flagged)
    "30008": Outcome.RETRY_LATER,  # unknown error
}
UNSUBSCRIBED: Final = "21610"
_STATUSES: Final[Mapping[str, ReceiptStatus]] = {
    "sent": ReceiptStatus.SENT, "delivered": ReceiptStatus.DELIVERED, "read": ReceiptStatus.READ,
    "undelivered": ReceiptStatus.FAILED, "failed": ReceiptStatus.FAILED,
}
_INTERMEDIATE = frozenset({"queued", "accepted", "sending", "scheduled", "canceled", "receiving"})

_log = logging.getLogger(__name__)


def twilio_signature(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, url + name+value of every parameter, sorted by name))."""
    payload = url + "".join(name + value for name, value in sorted(params, key=lambda pair: pair[0]))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


@dataclass(frozen=True)
class TwilioSmsConfig:
    """Where the driver sends, the public webhook URL, and where its secrets come from (no secret values)."""

    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    webhook_url: str | None = None  # the public URL of our /webhooks/sms, as Twilio calls it
    account_sid: SecretSource = field(default_factory=lambda: SecretSource(ENV_ACCOUNT_SID))
    auth_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_AUTH_TOKEN))


def build_send_form(message: OutboundMessage, status_callback: str | None) -> list[tuple[str, str]]:
    """The form parameters of a Messages create; InvalidMessage for what SMS cannot take."""
    if not isinstance(message.content, Text):
        raise InvalidMessage(f"sms sends Text only, not {type(message.content).__name__}")
    text = message.content.body
    if not text or len(text) > TEXT_LIMIT:
        raise InvalidMessage(f"sms text must be 1-{TEXT_LIMIT} characters, got {len(text)}")
    if not _E164.match(message.recipient):
        raise InvalidMessage("sms recipient must be an E.164 number (+ and 7-15 digits)")
    sender = ("MessagingServiceSid" if message.sender.startswith("MG") else "From", message.sender)
    form = [("To", message.recipient), sender, ("Body", text)]
    if status_callback:
        form.append(("StatusCallback", status_callback))
    return form


class TwilioSmsDriver(ChannelDriver):
    """Twilio Programmable Messaging (SMS); sent/delivered/failed receipts by status callback; inbound SMS."""

    channel = CHANNEL
    capabilities = Capabilities(
        receipts=frozenset({ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.FAILED}),
        inbound=True,
        content=frozenset({"Text"}),
        outcomes=frozenset({Outcome.ACCEPTED, Outcome.RETRY_LATER, Outcome.RETRY_RECIPIENT_LATER,
                            Outcome.PERMANENT_FAILURE, Outcome.STOP_ACCOUNT}),
        receipt_message_id=False,
        callback_reference=True,
    )

    def __init__(self, config: TwilioSmsConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or TwilioSmsConfig()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(timeout=self.config.timeout)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: base_url, timeout, webhook_url (public callback URL; else $SWITCHBOARD_TWILIO_WEBHOOK_URL),
        account_sid_env and auth_token_env naming the variables that hold the secrets."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown sms settings: {', '.join(sorted(unknown))}")
        config = TwilioSmsConfig(
            base_url=settings.get("base_url", DEFAULT_BASE_URL),
            timeout=float(settings.get("timeout", "10")),
            webhook_url=settings.get("webhook_url") or os.environ.get(ENV_WEBHOOK_URL) or None,
            account_sid=SecretSource(settings.get("account_sid_env", ENV_ACCOUNT_SID)),
            auth_token=SecretSource(settings.get("auth_token_env", ENV_AUTH_TOKEN)),
        )
        return cls(config, transport=transport)

    def __repr__(self) -> str:
        return f"TwilioSmsDriver(base_url={self.config.base_url!r}, webhook_url={self.config.webhook_url!r})"

    def messages_url(self, account_sid: str) -> str:
        """The Messages create endpoint of one account."""
        return f"{self.config.base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Creates one Message; never raises."""
        result = await self._send(message)
        log_result(_log, CHANNEL, message, result)
        return result

    async def _send(self, message: OutboundMessage) -> SendResult:
        try:
            body = urlencode(build_send_form(message, self._status_callback(message))).encode()
            sid, token = self.config.account_sid.get().reveal(), self.config.auth_token.get()
        except (InvalidMessage, MissingSecret) as error:
            return local_failure(message, error)
        basic = base64.b64encode(f"{sid}:{token.reveal()}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
                   "Accept": "application/json"}
        answer = await request_or_failure(
            message, lambda: self._transport.request("POST", self.messages_url(sid), headers, body))
        return answer if isinstance(answer, SendResult) else self._read(message, answer)

    def _status_callback(self, message: OutboundMessage) -> str | None:
        """webhook_url with the send's reference: Twilio signs it, and the normaliser reads the receipt's owner."""
        url = self.config.webhook_url
        return url_with_reference(url, message.message_id) if url else None

    def _read(self, message: OutboundMessage, response: TransportResponse) -> SendResult:
        payload = json_or_none(response.body)
        if 200 <= response.status < 300:
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if not sid:
                error = ProviderError(LocalErrorCode.BAD_RESPONSE, "success without sid", http_status=response.status)
                return failed(message, error, Outcome.RETRY_LATER, maybe_sent=True)
            return SendResult(Outcome.ACCEPTED, message.message_id, str(sid), message.recipient,
                              str(payload.get("status") or "queued"))
        if isinstance(payload, dict) and "code" in payload and payload["code"] is not None:
            error = ProviderError(str(payload["code"]), str(payload.get("message", "")),
                                  details=_str(payload.get("more_info")), http_status=response.status)
        else:
            error = ProviderError(LocalErrorCode.HTTP, f"HTTP {response.status} without a Twilio error body",
                                  http_status=response.status)
        return failed(message, error, self.classify(error), retry_after=parse_retry_after(response.headers),
                      maybe_sent=response.status >= 500, consent_revoked=error.code == UNSUBSCRIBED)

    def opted_out(self, error: ProviderError) -> str | None:
        """21610: the number texted STOP to the sender, which blocks every message from it."""
        return "all" if error.code == UNSUBSCRIBED else None

    def classify(self, error: ProviderError) -> Outcome:
        """TWILIO_ERROR_CODES; unknown codes go by HTTP status (429 and 5xx retry, the rest fail the message)."""
        local = classify_local(error)
        if local is not None:
            return local
        known = TWILIO_ERROR_CODES.get(error.code)
        if known is not None:
            return known
        return retry_by_http_status(error.http_status)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """X-Twilio-Signature over the URL Twilio requested (webhook_url with the request's query, which carries
        our reference on a status callback) and the sorted form parameters, compared in constant time."""
        received = header_value(headers, SIGNATURE_HEADER)
        if not received:
            raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
        if not self.config.webhook_url:
            raise MissingSecret("the sms driver needs the webhook_url setting to verify Twilio signatures")
        try:
            params = parse_qsl(raw_body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise SignatureInvalid("the body is not UTF-8 form data") from None
        url = signed_url(self.config.webhook_url, query_of(headers))
        expected = twilio_signature(url, params, self.config.auth_token.get().reveal())
        if not hmac.compare_digest(expected.encode(), received.strip().encode("utf-8", "replace")):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the URL and parameters")

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """One status callback (→ ReceiptItem) or incoming SMS (→ InboundItem) per request."""
        return parse_twilio_webhook(raw_body)

    def parse_received(self, raw_body: bytes, received_at: datetime | None) -> list[NormalizedItem]:
        """As parse_webhook, a status callback stamped when the receiver took it (Twilio's carry no time)."""
        return parse_twilio_webhook(raw_body, received_at)

    async def aclose(self) -> None:
        """Closes the transport when the driver created it."""
        if self._owns_transport:
            await self._transport.aclose()


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_twilio_webhook(raw_body: bytes, now: datetime | None = None) -> list[NormalizedItem]:
    """The item of one form-encoded callback; MalformedWebhook without MessageSid/SmsSid and AccountSid.

    Status callbacks carry no time: `occurred_at` is `now` (the time we read it) unless a delivered callback has
    RawDlrDoneDate (YYMMDDhhmm, the carrier's delivery time, UTC).
    """
    try:
        form = dict(parse_qsl(raw_body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise MalformedWebhook("not form-encoded UTF-8") from None
    sid = form.get("MessageSid") or form.get("SmsSid")
    account = form.get("AccountSid")
    if not sid or not account:
        raise MalformedWebhook("not a Twilio messaging callback (no MessageSid and AccountSid)")
    when = now or datetime.now(UTC)
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if status == "received" or (not form.get("MessageStatus") and "Body" in form):
        return [_inbound(form, sid, account, when)]
    if status in _STATUSES:
        errors: tuple[ProviderError, ...] = ()
        if form.get("ErrorCode"):
            errors = (ProviderError(form["ErrorCode"], form.get("ErrorMessage", "")),)
        return [ReceiptItem(CHANNEL, account, sid, _STATUSES[status], _dlr_time(form) or when,
                            recipient_id=form.get("To"), errors=errors)]
    reason = "intermediate status, no receipt" if status in _INTERMEDIATE else f"unknown status {status!r}"
    return [UnhandledItem(CHANNEL, f"status:{status or 'none'}", reason, account, raw=form)]


def _inbound(form: Mapping[str, str], sid: str, account: str, when: datetime) -> InboundItem:
    media = None
    if form.get("NumMedia", "0") not in ("", "0") and form.get("MediaUrl0"):
        media = InboundMedia("media", form["MediaUrl0"], mime_type=form.get("MediaContentType0"),
                             url=form["MediaUrl0"])
    return InboundItem(CHANNEL, account, sid, form.get("From", ""), when, "media" if media else "text",
                       text=form.get("Body"), media=media, raw=form)


def _dlr_time(form: Mapping[str, str]) -> datetime | None:
    value = form.get("RawDlrDoneDate", "")
    try:
        return datetime.strptime(value, "%y%m%d%H%M").replace(tzinfo=UTC) if len(value) == 10 else None
    except ValueError:
        return None

