"""Reloads pipeline.toml while workers run: a changed, valid file replaces the config; an invalid one is reported."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from switchboard._config_model import ConfigError, PipelineConfig
from switchboard._config_parse import load_bytes, read_bytes

log = logging.getLogger(__name__)

Subscriber = Callable[[PipelineConfig], None]


class PipelineWatcher:
    """Polls the file's content hash and swaps in each new valid config.

    Polling rather than inotify: no new dependency, and it works the same on every file system (NFS,
    container bind mounts). The hash, not the mtime, decides: a rewrite within one mtime tick still
    counts, and the file is a few kilobytes read once a second. The swap is one reference assignment,
    so a reader sees the old or the new config, never a mix; an invalid file leaves the old config in
    place and sets `last_error`.
    """

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        """Loads the file now: a worker must not start on an invalid one (ConfigError)."""
        self.path = path
        self.interval = interval
        self.last_error: ConfigError | None = None
        data = read_bytes(path)
        self._current = load_bytes(path, data)
        self._digest = hashlib.sha256(data).hexdigest()
        self._subscribers: list[Subscriber] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> PipelineConfig:
        return self._current

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(new_config)` after each swap; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def check_now(self) -> bool:
        """Re-reads the file if it changed; True when a new config was swapped in."""
        try:
            data = read_bytes(self.path)
        except ConfigError as error:
            self._digest = ""  # whatever comes back, even the same bytes, is loaded and clears the error
            return self._reject(error)
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return False  # touched or rewritten with the same bytes
        self._digest = digest
        try:
            config = load_bytes(self.path, data)
        except ConfigError as error:
            return self._reject(error)
        return self._swap(config)

    def start(self) -> None:
        """Polls every `interval` seconds in a task of the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"watch {self.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            # Read in the loop, not a thread: a few kilobytes, and subscribers then run on the loop's thread.
            self.check_now()

    def _reject(self, error: ConfigError) -> bool:
        repeated = self.last_error is not None and str(self.last_error) == str(error)
        self.last_error = error
        if not repeated:  # a file that stays unreadable is logged once, not every second
            log.error("pipeline config not reloaded, keeping the previous one: %s", error)
        return False

    def _swap(self, config: PipelineConfig) -> bool:
        self._current = config
        self.last_error = None
        log.info("pipeline config reloaded from %s", self.path)
        for callback in list(self._subscribers):
            try:
                callback(config)
            except Exception:
                # One broken subscriber must not keep the others on the old config.
                log.exception("pipeline config subscriber %r failed", callback)
        return True
