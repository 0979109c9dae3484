"""Every kind of mistake in pipeline.toml is a ConfigError naming the file, the dotted key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.config import ConfigError, load
from tests.unit.config.base import BASE, broken

CASES = [
    # (id, text, key, what)
    ("bad-cel-trigger", broken('condition = "event.total_minor > 100"', 'condition = "event.total_minor >"'),
     "triggers[0].condition", "is not a valid CEL condition"),
    ("bad-cel-route", broken("when = 'message.priority == \"high\"'", "when = 'message.priority =='"),
     "routes[0].when", "is not a valid CEL condition"),
    ("unknown-channel", broken('{ channel = "whatsapp", weight = 90 }', '{ channel = "telegram", weight = 90 }'),
     "routes[0].arms[0].channel", "names 'telegram', which is not a known channel of tenant 'acme'"),
    ("unknown-sender", broken('senders = ["wa-2"]', 'senders = ["wa-9"]'),
     "routes[0].arms[1].senders[0]", "names 'wa-9', which is not a known sender of channel 'whatsapp'"),
    ("weights-not-100", broken("weight = 10,", "weight = 20,"), "routes[0].arms", "weights must sum to 100, not 110"),
    ("fallback-own-channel",
     broken('channel = "whatsapp"\nfallback = ["sms"]', 'channel = "whatsapp"\nfallback = ["whatsapp"]'),
     "routes[1].fallback[0]", "names the route's own channel 'whatsapp'"),
    ("fallback-cycle", broken('fallback = ["sms"]\narms', 'fallback = ["sms", "sms"]\narms'),
     "routes[0].fallback[1]", "repeats channel 'sms': the chain would cycle"),
    ("fallback-unknown", broken('fallback = ["sms"]\narms', 'fallback = ["email"]\narms'),
     "routes[0].fallback[0]", "names 'email', which is not a known channel of tenant 'acme'"),
    ("route-both-channel-and-arms", broken('fallback = ["sms"]\narms', 'channel = "sms"\nfallback = ["sms"]\narms'),
     "routes[0]", "needs exactly one of channel"),
    ("route-unknown-retry",
     broken('fallback = ["sms"]\n\n[rate_limits', 'fallback = ["sms"]\nretry = "slow"\n\n[rate_limits'),
     "routes[1].retry", "names 'slow', which is not a known retry policy"),
    ("trigger-unknown-template", broken('template = "shipped"', 'template = "shipping"'),
     "triggers[0].template", "names 'shipping', which is not a known template"),
    ("trigger-unknown-tenant", broken('name = "ship"\ntenant = "acme"', 'name = "ship"\ntenant = "globex"'),
     "triggers[0].tenant", "names 'globex', which is not a known tenant"),
    ("trigger-unknown-event", broken('event = "OrderShipped"', 'event = "OrderLost"'),
     "triggers[0].event", "names 'OrderLost', which is not a known business event type"),
    ("trigger-missing-variable", broken('variables = { order_id = "event.order_id" }', "variables = {}"),
     "triggers[0].variables", "lacks parameter 'order_id' of template 'shipped'"),
    ("trigger-variable-not-a-path", broken('{ order_id = "event.order_id" }', "{ order_id = \"__import__('os')\" }"),
     "triggers[0].variables.order_id", "must be a path like event.order_id"),
    ("unknown-section", BASE + "\n[routing]\nx = 1\n", "unknown key routing", "(known: channels"),
    ("unknown-nested-key", broken("per_seconds = 6", "per_seconds = 6\nper_minute = 1"),
     "unknown key rate_limits.pair.per_minute", "(known: messages, per_seconds)"),
    ("wrong-type-int", broken("max_attempts = 3", 'max_attempts = "three"'),
     "retry.fast.max_attempts", "must be an integer, not 'three'"),
    ("wrong-type-array", broken('fallback = ["sms"]\narms', 'fallback = "sms"\narms'),
     "routes[0].fallback", "must be an array"),
    ("wrong-type-table", broken("[streams]\npartitions = 6", "streams = 6"), "streams", "must be a table"),
    ("negative-rate", broken("per_second = 100", "per_second = -5"),
     "rate_limits.tenants.acme.per_second", "must be greater than 0, not -5"),
    ("daily-quota-below-its-senders", broken("per_second = 100", "per_second = 100\ndaily = 2"),
     "rate_limits.tenants.acme.daily", "is 2, fewer than the 3 senders that share it"),
    ("template-text-unknown-locale",
     broken('parameters = ["order_id"]', 'parameters = ["order_id"]\ntext = { fr = "x" }'),
     "templates[0].text.fr", "names a locale the template is not in"),
    ("template-text-unknown-parameter",
     broken('parameters = ["order_id"]', 'parameters = ["order_id"]\ntext = { en = "{{ order_id }} {{ carrier }}" }'),
     "templates[0].text.en", "uses carrier, not among the template's parameters"),
    ("template-text-bad-syntax",
     broken('parameters = ["order_id"]', 'parameters = ["order_id"]\ntext = { en = "{{ order_id" }'),
     "templates[0].text.en", "does not parse"),
    ("negative-pair-window", broken("per_seconds = 6", "per_seconds = -6"),
     "rate_limits.pair.per_seconds", "must be greater than 0"),
    ("retry-cap-below-base", broken("cap_seconds = 10", "cap_seconds = 0.5"),
     "retry.fast.cap_seconds", "must be at least base_seconds"),
    ("bad-time-zone", broken('id = "acme"\ntimezone = "Europe/Berlin"', 'id = "acme"\ntimezone = "Mars/Olympus"'),
     "tenants[0].timezone", "is not a known IANA time zone"),
    ("bad-hhmm", broken('start = "22:00"', 'start = "24:00"'), "defaults.quiet_hours.start", "as HH:MM"),
    ("bad-hhmm-format", broken('end = "07:00"', 'end = "7pm"'), "defaults.quiet_hours.end", "as HH:MM"),
    ("empty-quiet-window", broken('end = "07:00"', 'end = "22:00"'), "defaults.quiet_hours.end", "must differ"),
    ("bad-category", broken('category = "marketing"', 'category = "spam"'),
     "defaults.frequency_caps[0].category", "must be one of marketing, utility"),
    ("whatsapp-address-not-digits", broken('address = "1001"', 'address = "+49 1001"'),
     "channels[0].senders[0].address", "must be a WhatsApp phone-number id"),
    ("unknown-sender-tier", broken('tier = "upgraded"', 'tier = "gold"'),
     "channels[0].senders[0].tier", "must be one of standard, upgraded"),
    ("duplicate-channel", broken('id = "sms"', 'id = "whatsapp"'), "channels[1].id", "repeats 'whatsapp'"),
    ("channel-kind-unknown", broken('kind = "sms"', 'kind = "unknown"'), "channels[1].kind", "must be one of"),
    ("missing-required", broken('name = "rest"\ntenant = "acme"\n', 'name = "rest"\n'),
     "routes[1].tenant", "is required"),
]


@pytest.mark.parametrize(("text", "key", "what"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_error_names_file_key_and_problem(tmp_path: Path, text: str, key: str, what: str) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as failure:
        load(path)
    message = str(failure.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert what in message


def test_the_base_of_the_error_cases_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(BASE)
    config = load(path)
    assert [route.name for route in config.routes] == ["main", "rest"]
