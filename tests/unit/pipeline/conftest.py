"""Fixtures for the pipeline's pure stages: a small pipeline declaration and command builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregates import Contact
from switchboard._config_parse import load_bytes
from switchboard.config import PipelineConfig

PIPELINE = b"""
[[tenants]]
id = "acme"
name = "Acme"
timezone = "UTC"

[[channels]]
id = "whatsapp"
kind = "whatsapp"
tenant = "acme"
provider = "meta"
driver = "inprocess"
[[channels.senders]]
id = "wa-main"
address = "105954558954427"
per_second = 10
burst = 2

[[channels]]
id = "sms"
kind = "sms"
tenant = "acme"
provider = "sms-gateway"
driver = "inprocess"
[[channels.senders]]
id = "sms-main"
address = "+4915000000000"

[[templates]]
name = "order_shipped"
category = "utility"
parameters = ["order_id"]
locales = ["en", "pt", "de"]

[[templates]]
name = "promo"
category = "marketing"
parameters = []

[[triggers]]
name = "shipping-notice"
tenant = "acme"
event = "OrderShipped"
condition = '"vip" in customer.tags'
template = "order_shipped"
variables = { order_id = "event.order_id" }

[[routes]]
name = "otp"
tenant = "acme"
when = 'message.priority == "high"'
channel = "whatsapp"
fallback = ["sms"]
retry = "urgent"
deadline_seconds = 30

[[routes]]
name = "default"
tenant = "acme"
channel = "whatsapp"
fallback = ["sms"]

[retry.default]
max_attempts = 3
base_seconds = 1.0
factor = 2.0
cap_seconds = 10.0

[retry.urgent]
max_attempts = 2
base_seconds = 0.5
factor = 2.0
cap_seconds = 1.0

[defaults.quiet_hours]
start = "22:00"
end = "07:00"
timezone = "UTC"
exempt = ["authentication"]

[[defaults.frequency_caps]]
category = "marketing"
max_messages = 1
period_seconds = 86400
"""


@pytest.fixture
def config() -> PipelineConfig:
    return load_bytes(Path("test-pipeline.toml"), PIPELINE)


def contact_id(ref: str = "cust-1") -> str:
    return str(Contact.create_id("acme", ref))


def contact_command(ref: str = "cust-1", tags: tuple[str, ...] = (), sms: bool = True) -> dict[str, Any]:
    addresses = {"whatsapp": "+4917000000001", **({"sms": "+4917000000001"} if sms else {})}
    return {"kind": "contact", "command_id": f"c-{ref}", "tenant": "acme", "contact_id": contact_id(ref),
            "contact": {"external_ref": ref, "addresses": addresses,
                        "attributes": {"tags": list(tags), "first_name": "Ana"}}}


def request(key: str, ref: str = "cust-1", **message: Any) -> dict[str, Any]:
    spec = {"idempotency_key": key, "category": "utility", "template": "order_shipped",
            "parameters": {"order_id": key}, **message}
    return {**contact_command(ref), "kind": "request", "command_id": f"r-{key}", "message": spec}


def outcome(job: dict[str, Any], result: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "outcome", "command_id": f"o-{job['message_id']}-{job['attempt']}", "contact_id": job["contact_id"],
            "message_id": job["message_id"], "attempt": job["attempt"], "outcome": result, **extra}
