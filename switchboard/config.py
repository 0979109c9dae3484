"""Loading and validating pipeline.toml: every error names the file, the key and what is wrong."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard.errors import SwitchboardError
from switchboard.localkafka import project_root


class ConfigError(SwitchboardError):
    """pipeline.toml is missing, unreadable or holds a wrong value."""


@dataclass(frozen=True)
class StreamsConfig:
    """How event topics are laid out."""

    partitions: int = 6
    replication: int = -1


@dataclass(frozen=True)
class DemoConfig:
    """Defaults of the demo job."""

    messages: int = 8


@dataclass(frozen=True)
class PipelineConfig:
    """The whole validated pipeline.toml."""

    streams: StreamsConfig
    demo: DemoConfig


_SECTIONS: dict[str, type[Any]] = {"streams": StreamsConfig, "demo": DemoConfig}


def load(path: Path) -> PipelineConfig:
    """Reads and validates the file; raises ConfigError naming the key on any problem."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    _reject_unknown(path, "", raw, set(_SECTIONS))
    return PipelineConfig(**{name: _section(path, name, raw.get(name, {})) for name in _SECTIONS})


def _section(path: Path, name: str, values: Any) -> Any:
    kind = _SECTIONS[name]
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    defaults = kind()
    _reject_unknown(path, f"{name}.", values, set(defaults.__dict__))
    for key, value in values.items():
        _check_int(path, f"{name}.{key}", value)
    section = kind(**values)
    _check_ranges(path, section)
    return section


def _reject_unknown(path: Path, prefix: str, values: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")


def _check_int(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{path}: {key} must be an integer, not {value!r}")


def _check_ranges(path: Path, section: Any) -> None:
    if isinstance(section, StreamsConfig):
        if section.partitions < 1:
            raise ConfigError(f"{path}: streams.partitions must be at least 1, not {section.partitions}")
        if section.replication == 0 or section.replication < -1:
            raise ConfigError(f"{path}: streams.replication must be -1 (automatic) or at least 1")
    if isinstance(section, DemoConfig) and section.messages < 1:
        raise ConfigError(f"{path}: demo.messages must be at least 1, not {section.messages}")


def default_path() -> Path:
    """pipeline.toml at the project root, or the file named by SWITCHBOARD_PIPELINE."""
    return Path(os.environ.get("SWITCHBOARD_PIPELINE", project_root() / "pipeline.toml"))
