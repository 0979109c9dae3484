"""The shipped pipeline.toml: it loads, declares the documented examples, and holds no secrets."""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any

from aggregates import Channel, MessageCategory
from streams.pipeline._drivers import sends_templates
from switchboard.config import BUSINESS_EVENTS, PipelineConfig, load
from switchboard.localkafka import project_root

SHIPPED = project_root() / "pipeline.toml"
_SECRET_NAME = re.compile(r"token|secret|password|passwd|api_?key|credential|private", re.IGNORECASE)


def _shipped() -> PipelineConfig:
    return load(SHIPPED)


def test_the_shipped_file_loads_with_every_section() -> None:
    config = _shipped()
    assert [tenant.id for tenant in config.tenants] == ["acme"]
    assert {channel.id: channel.kind for channel in config.channels} == {"whatsapp": Channel.WHATSAPP,
                                                                          "sms": Channel.SMS}
    assert {trigger.event for trigger in config.triggers} == {"OrderPlaced", "OrderShipped", "PaymentFailed"}
    assert config.rate_limits.pair is not None
    assert config.rate_limits.pair.per_seconds == 6
    assert config.retry_policy("default") is not None


def test_whatsapp_senders_have_their_throughput_tier() -> None:
    whatsapp = _shipped().channel("whatsapp")
    assert whatsapp is not None
    assert sorted(sender.per_second for sender in whatsapp.senders) == [80.0, 1000.0]


def test_vip_trigger_condition_is_compiled_cel() -> None:
    vip = next(trigger for trigger in _shipped().triggers if trigger.event == "OrderPlaced")
    assert vip.condition is not None
    assert vip.condition.matches({"event": {"total_minor": 150_000}, "customer": {"tags": ["vip"]}})
    assert not vip.condition.matches({"event": {"total_minor": 150_000}, "customer": {"tags": []}})
    assert not vip.condition.matches({"event": {"total_minor": 90_000}, "customer": {"tags": ["vip"]}})


def test_routes_show_the_split_the_fallback_and_the_deadline() -> None:
    routes = {route.name: route for route in _shipped().routes}
    assert sorted(arm.weight for arm in routes["shipping-notices"].arms) == [10, 90]
    assert all(route.fallback == ("sms",) for route in routes.values())
    assert routes["one-time-passwords"].deadline_seconds == 30


def test_quiet_hours_and_marketing_cap_defaults() -> None:
    defaults = _shipped().defaults
    assert defaults.quiet_hours is not None
    assert (defaults.quiet_hours.start, defaults.quiet_hours.end) == (time(22, 0), time(7, 0))
    assert [cap.category for cap in defaults.frequency_caps] == [MessageCategory.MARKETING]


def _secret_keys(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        found = [f"{key}.{name}" for name, entry in value.items() if _SECRET_NAME.search(name) and entry]
        return found + [hit for name, entry in value.items() for hit in _secret_keys(entry, f"{key}.{name}")]
    if isinstance(value, list):
        return [hit for index, entry in enumerate(value) for hit in _secret_keys(entry, f"{key}[{index}]")]
    return []


def test_no_key_named_like_a_secret_holds_a_value() -> None:
    assert _secret_keys(tomllib.loads(SHIPPED.read_text())) == []


def test_the_secret_check_would_catch_one() -> None:
    assert _secret_keys({"channels": [{"senders": [{"access_token": "EAAG..."}]}]}) == [
        ".channels[0].senders[0].access_token"]


def test_trigger_event_types_match_the_business_event_schemas() -> None:
    schemas = project_root() / "schemas" / "avro"
    declared = {path.name.removeprefix("switchboard.business.") for path in schemas.glob("switchboard.business.*")}
    assert declared == BUSINESS_EVENTS


def test_the_example_in_docs_pipeline_md_is_valid(tmp_path: Path) -> None:
    text = (project_root() / "docs" / "PIPELINE.md").read_text()
    example = text.split("```toml", 1)[1].split("```", 1)[0]
    path = tmp_path / "pipeline.toml"
    path.write_text(example)
    assert [route.name for route in load(path).routes] == ["one-time-passwords", "shipping-notices"]


def test_every_shipped_template_can_fall_back_to_the_text_only_sms_channel() -> None:
    # The shipped SMS channel is Twilio's driver, which sends text only: a template without a text for its
    # default locale would be dead-lettered there instead of falling back.
    config = _shipped()
    assert not sends_templates(config, "sms")
    assert sends_templates(config, "whatsapp")
    assert [t.name for t in config.templates if t.default_locale not in dict(t.texts)] == []
