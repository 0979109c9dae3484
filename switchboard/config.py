"""Loading and validating pipeline.toml: every error names the file, the key and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

from switchboard._config_model import (
    BUSINESS_EVENTS,
    ChannelConfig,
    ConfigError,
    Defaults,
    DemoConfig,
    DispatchConfig,
    PairLimit,
    PipelineConfig,
    Quota,
    RateLimits,
    Route,
    RouteArm,
    Sender,
    StreamsConfig,
    TemplateRef,
    Tenant,
    Trigger,
)
from switchboard._config_parse import load_bytes, read_bytes
from switchboard._config_route import (
    FallbackStep,
    RouteDecision,
    RoutingError,
    choose_arm,
    choose_route,
    split_bucket,
)
from switchboard._config_watch import PipelineWatcher
from switchboard.localkafka import project_root

__all__ = [
    "BUSINESS_EVENTS",
    "ChannelConfig",
    "ConfigError",
    "Defaults",
    "DemoConfig",
    "DispatchConfig",
    "FallbackStep",
    "PairLimit",
    "PipelineConfig",
    "PipelineWatcher",
    "Quota",
    "RateLimits",
    "Route",
    "RouteArm",
    "RouteDecision",
    "RoutingError",
    "Sender",
    "StreamsConfig",
    "TemplateRef",
    "Tenant",
    "Trigger",
    "choose_arm",
    "choose_route",
    "default_path",
    "load",
    "split_bucket",
]


def load(path: Path) -> PipelineConfig:
    """Reads and validates the file; raises ConfigError naming the file and the key on any problem."""
    return load_bytes(path, read_bytes(path))


def default_path() -> Path:
    """pipeline.toml at the project root, or the file named by SWITCHBOARD_PIPELINE."""
    return Path(os.environ.get("SWITCHBOARD_PIPELINE", project_root() / "pipeline.toml"))
