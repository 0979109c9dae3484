"""The demo's pipeline declaration: the repository's pipeline.toml with its channels pointed at local stand-ins."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from connectors.inprocess import InProcessDriver
from streams.pipeline._drivers import driver_classes
from switchboard.config import PipelineConfig, load

__all__ = ["SmsStandIn", "demo_declaration", "dump_toml", "receipt_statuses", "write_demo_declaration"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SmsStandIn:
    """The Twilio simulator's URL, and the receiver's SMS webhook URL its status callbacks go to (and are signed
    over): both must be in the declaration before the parts start."""

    base_url: str
    webhook_url: str


def demo_declaration(production: Mapping[str, Any], simulator_url: str, sms: SmsStandIn | None = None
                     ) -> dict[str, Any]:
    """A copy of the parsed declaration whose WhatsApp channels talk to the simulator, whose SMS channels talk to
    the Twilio simulator (when given), and whose other channels are the in-process stand-in (accepts everything,
    sends no receipts); everything else is left as it is."""
    declaration: dict[str, Any] = json.loads(json.dumps(production, default=str))  # a deep copy; no dates here
    for channel in declaration.get("channels", []):
        if channel.get("kind") == "whatsapp":
            channel["driver"], channel["settings"] = "whatsapp", {"base_url": simulator_url}
        elif channel.get("kind") == "sms" and sms is not None:
            channel["driver"], channel["settings"] = "sms", {"base_url": sms.base_url, "webhook_url": sms.webhook_url}
        else:
            channel["driver"] = InProcessDriver.channel
            channel.pop("settings", None)
    return declaration


def write_demo_declaration(source: Path, target: Path, simulator_url: str, sms: SmsStandIn | None = None
                           ) -> PipelineConfig:
    """Writes the demo declaration derived from `source` to `target` and returns it loaded (hence validated)."""
    declaration = demo_declaration(tomllib.loads(source.read_text()), simulator_url, sms)
    twilio = f"SMS the Twilio simulator at {sms.base_url}, " if sms is not None else ""
    header = (f"# Written by `switchboard demo` from {source}: the WhatsApp channel talks to the simulator at\n"
              f"# {simulator_url}, {twilio}every other channel is the in-process stand-in. Rewritten on each run;\n"
              f"# the secrets come from the environment of the demo's processes, never from here.\n\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + dump_toml(declaration))
    return load(target)


def receipt_statuses(config: PipelineConfig) -> dict[str, frozenset[str]]:
    """Per channel kind, the receipt statuses its driver reports (empty: accepted is as far as it goes)."""
    drivers = driver_classes()
    found: dict[str, frozenset[str]] = {}
    for channel in config.channels:
        driver = drivers.get(channel.driver)
        statuses = frozenset(str(s) for s in driver.capabilities.receipts) if driver is not None else frozenset()
        found[channel.kind.value] = found.get(channel.kind.value, frozenset()) | statuses
    return found


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML for a parsed declaration: tables as [sections], arrays of tables as [[sections]], tables inside those
    inline. Covers what tomllib returns for pipeline.toml (strings, numbers, booleans, dates, arrays, tables)."""
    lines: list[str] = []
    _section(lines, (), data, in_array=False)
    return "\n".join(lines).strip() + "\n"


def _section(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any], in_array: bool) -> None:
    """A table's keys, then its sub-tables as sections (inline inside an array of tables), then its arrays."""
    sections = {} if in_array else {k: v for k, v in table.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in table.items() if _is_table_array(v)}
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items() if k not in sections and k not in arrays)
    for key, value in sections.items():
        if not value or any(not isinstance(v, Mapping) and not _is_table_array(v) for v in value.values()):
            lines.extend(["", f"[{_dotted((*path, key))}]"])  # a table of tables only needs no header of its own
        _section(lines, (*path, key), value, in_array=False)
    for key, items in arrays.items():
        for item in items:
            lines.extend(["", f"[[{_dotted((*path, key))}]]"])
            _section(lines, (*path, key), item, in_array=True)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
