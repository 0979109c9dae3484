"""The pipeline declaration (pipeline.toml text) the benchmarks and the fault suite write: one builder, its variants."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["SENDER", "Declaration", "Retry"]

SENDER = "105954558954427"  # the WhatsApp phone number id the simulator serves and the pipeline sends from


@dataclass(frozen=True)
class Retry:
    """One `[retry.NAME]` policy."""

    max_attempts: int
    base_seconds: float
    factor: float
    cap_seconds: float


@dataclass(frozen=True)
class Declaration:
    """One tenant, a WhatsApp channel with one sender, the `order_shipped` template and one route to it.

    The sender's rate is either Meta's `tier` or an explicit `per_second` (and `burst`, default the same); the
    variants add an SMS channel the route falls back to, retry policies and the dispatcher's reconcile period.
    """

    partitions: int
    tenant: str = "bench"
    tenant_name: str = "Benchmark"
    driver: str = "inprocess"
    settings: Mapping[str, str] = field(default_factory=dict)  # the WhatsApp channel's driver settings
    sender: str = SENDER
    tier: str | None = None
    per_second: float | None = None
    burst: float | None = None
    replication: int | None = None
    sms_fallback: bool = False
    retries: Mapping[str, Retry] = field(default_factory=dict)
    route_retry: str | None = None  # the route's retry policy (the declaration's "default" when None)
    reconcile_seconds: float | None = None

    def text(self) -> str:
        """The TOML text; `switchboard._config_parse.load_bytes` accepts every variant."""
        sections = [self._streams(), self._tenant(), self._whatsapp()]
        if self.sms_fallback:
            sections.append(self._sms())
        sections += [_TEMPLATE, self._route(), *(self._retry(name, r) for name, r in self.retries.items())]
        if self.reconcile_seconds is not None:
            sections.append(f"[dispatch]\nreconcile_seconds = {_toml(self.reconcile_seconds)}\n")
        return "\n".join(sections)

    def _streams(self) -> str:
        replication = "" if self.replication is None else f"replication = {self.replication}\n"
        return f"[streams]\npartitions = {self.partitions}\n{replication}"

    def _tenant(self) -> str:
        return f'[[tenants]]\nid = {_toml(self.tenant)}\nname = {_toml(self.tenant_name)}\ntimezone = "UTC"\n'

    def _whatsapp(self) -> str:
        lines = ["[[channels]]", 'id = "whatsapp"', 'kind = "whatsapp"', f"tenant = {_toml(self.tenant)}",
                 'provider = "meta"', f"driver = {_toml(self.driver)}"]
        if self.settings:
            lines.append(f"settings = {_inline(self.settings)}")
        lines += ["[[channels.senders]]", 'id = "wa-main"', f"address = {_toml(self.sender)}", *self._rate()]
        return "\n".join(lines) + "\n"

    def _rate(self) -> list[str]:
        """The sender's rate: a tier's, an explicit one, or both (the explicit one wins)."""
        lines = [] if self.tier is None else [f"tier = {_toml(self.tier)}"]
        if self.per_second is not None:
            burst = self.per_second if self.burst is None else self.burst
            lines += [f"per_second = {_toml(self.per_second)}", f"burst = {_toml(burst)}"]
        return lines

    def _sms(self) -> str:
        return (f'[[channels]]\nid = "sms"\nkind = "sms"\ntenant = {_toml(self.tenant)}\nprovider = "sms-gateway"\n'
                'driver = "inprocess"\n[[channels.senders]]\nid = "sms-main"\naddress = "+4915000000000"\n'
                "per_second = 5000\nburst = 5000\n")

    def _route(self) -> str:
        lines = ["[[routes]]", 'name = "default"', f"tenant = {_toml(self.tenant)}", 'channel = "whatsapp"']
        if self.sms_fallback:
            lines.append('fallback = ["sms"]')
        if self.route_retry is not None:
            lines.append(f"retry = {_toml(self.route_retry)}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _retry(name: str, retry: Retry) -> str:
        return (f"[retry.{name}]\nmax_attempts = {retry.max_attempts}\nbase_seconds = {_toml(retry.base_seconds)}\n"
                f"factor = {_toml(retry.factor)}\ncap_seconds = {_toml(retry.cap_seconds)}\n")


_TEMPLATE = '[[templates]]\nname = "order_shipped"\ncategory = "utility"\nparameters = ["order_id"]\n'


def _toml(value: str | float) -> str:
    """A TOML scalar (JSON's string escapes are TOML's basic-string escapes; a float's repr is a TOML float)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _inline(values: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {_toml(value)}" for key, value in values.items()) + " }"
