"""Finding channel drivers through the `switchboard.channels` entry-point group, built-in and third-party alike."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from connectors._driver import ChannelDriver
from connectors._errors import DriverLoadError

__all__ = ["ENTRY_POINT_GROUP", "get_driver", "load_drivers"]

ENTRY_POINT_GROUP = "switchboard.channels"


def load_drivers(group: str = ENTRY_POINT_GROUP) -> dict[str, type[ChannelDriver]]:
    """Channel name -> driver class for every installed plugin; DriverLoadError names the plugin that is broken."""
    importlib.invalidate_caches()  # a plugin installed into sys.path since the last call must be seen now
    drivers: dict[str, type[ChannelDriver]] = {}
    origins: dict[str, str] = {}
    for entry in _unique(entry_points(group=group)):
        origin = _origin(entry)
        if entry.name in drivers:
            if origins[entry.name] == origin:
                continue
            raise DriverLoadError(f"channel {entry.name!r} is claimed by both {origins[entry.name]} and {origin}")
        drivers[entry.name] = _load(entry, origin)
        origins[entry.name] = origin
    return drivers


def get_driver(channel: str, group: str = ENTRY_POINT_GROUP) -> type[ChannelDriver]:
    """The driver class of one channel; DriverLoadError lists the channels that are installed otherwise."""
    drivers = load_drivers(group)
    if channel not in drivers:
        installed = ", ".join(sorted(drivers)) or "none"
        raise DriverLoadError(f"no driver for channel {channel!r} (installed: {installed})")
    return drivers[channel]


def _unique(found: Iterable[EntryPoint]) -> list[EntryPoint]:
    # The same distribution can be visible twice (an editable install and a build dir); count it once.
    seen: set[tuple[str, str]] = set()
    unique = []
    for entry in found:
        if (entry.name, entry.value) not in seen:
            seen.add((entry.name, entry.value))
            unique.append(entry)
    return unique


def _load(entry: EntryPoint, origin: str) -> type[ChannelDriver]:
    try:
        loaded = entry.load()
    except Exception as error:  # any import-time failure of a plugin is reported the same way
        raise DriverLoadError(f"cannot load channel driver {entry.name!r} from {origin}: {error}") from error
    if not (isinstance(loaded, type) and issubclass(loaded, ChannelDriver)):
        raise DriverLoadError(f"{origin} registers {entry.name!r} = {entry.value}, which is not a ChannelDriver class")
    if inspect.isabstract(loaded):
        raise DriverLoadError(f"{origin} registers {entry.name!r} = {entry.value}, which is still abstract")
    if getattr(loaded, "channel", None) != entry.name:
        raise DriverLoadError(f"{origin} registers {loaded.__name__} as {entry.name!r}, "
                              f"but its channel is {getattr(loaded, 'channel', None)!r}")
    return loaded


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry.value
