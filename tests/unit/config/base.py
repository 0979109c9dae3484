"""A small valid pipeline file that the error cases break one key at a time."""

BASE = """
[streams]
partitions = 6

[[tenants]]
id = "acme"
timezone = "Europe/Berlin"

[[channels]]
id = "whatsapp"
kind = "whatsapp"
tenant = "acme"
provider = "meta"
senders = [{ id = "wa-main", address = "1001", tier = "upgraded" }, { id = "wa-2", address = "1002" }]

[[channels]]
id = "sms"
kind = "sms"
tenant = "acme"
provider = "gateway"
senders = [{ id = "sms-main", address = "+4915000000000" }]

[[templates]]
name = "shipped"
category = "utility"
parameters = ["order_id"]

[[triggers]]
name = "ship"
tenant = "acme"
event = "OrderShipped"
condition = "event.total_minor > 100"
template = "shipped"
variables = { order_id = "event.order_id" }

[[routes]]
name = "main"
tenant = "acme"
when = 'message.priority == "high"'
fallback = ["sms"]
arms = [{ channel = "whatsapp", weight = 90 }, { channel = "whatsapp", weight = 10, senders = ["wa-2"] }]

[[routes]]
name = "rest"
tenant = "acme"
channel = "whatsapp"
fallback = ["sms"]

[rate_limits.pair]
messages = 1
per_seconds = 6

[rate_limits.tenants.acme]
per_second = 100

[retry.fast]
max_attempts = 3
base_seconds = 1
cap_seconds = 10

[defaults.quiet_hours]
start = "22:00"
end = "07:00"
timezone = "Europe/Berlin"

[[defaults.frequency_caps]]
category = "marketing"
max_messages = 2
period_seconds = 86400
"""


def broken(old: str, new: str) -> str:
    """BASE with one exact, unique fragment replaced (a typo in a case must not silently test nothing)."""
    assert BASE.count(old) == 1, f"{old!r} occurs {BASE.count(old)} times in BASE"
    return BASE.replace(old, new)
