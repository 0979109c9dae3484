"""Running stream workers as child processes: started, stopped gracefully, or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from streams.tally import TallyConfig
from switchboard.errors import SwitchboardError
from switchboard.kafka_io import collect_json

GRACEFUL_STOP_SECONDS = 30.0


class WorkerSpec(Protocol):
    """What a worker process is started from: its name and its command line (TallyConfig, PipelineSettings)."""

    @property
    def worker_name(self) -> str: ...

    def command_line(self) -> list[str]: ...


Spec = TypeVar("Spec", bound=WorkerSpec)


class WorkerProcess(Generic[Spec]):
    """One `switchboard` subcommand (`worker`, `pipeline`, `receiver`...) as a child process; output to a log file.

    `env` is added to this process's environment (secrets for the child only); with `own_session` the child gets
    a session of its own, so a Ctrl-C at the terminal reaches only the parent, which then stops it in order.
    """

    def __init__(self, config: Spec, log_file: Path, *, env: Mapping[str, str] | None = None,
                 own_session: bool = False) -> None:
        self.config = config
        self.log_file = log_file
        self._env = dict(env or {})
        self._own_session = own_session
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            command = [sys.executable, "-m", "switchboard.cli", *self.config.command_line()]
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=self._own_session,
                                             env={**os.environ, **self._env, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self._process.poll() if self._process is not None else None

    def stop(self) -> int:
        """SIGTERM and wait for a clean shutdown (offsets committed); SIGKILL if it does not finish in time."""
        process = self._require_started()
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(GRACEFUL_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def kill(self) -> int:
        """SIGKILL: the crash case, nothing gets a chance to flush or commit."""
        process = self._require_started()
        process.kill()
        return process.wait()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return "\n".join(text[-lines:])

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("worker was never started")
        return self._process


TallyWorker = WorkerProcess[TallyConfig]


class WorkerExited(SwitchboardError):
    """A worker stopped while its output was still awaited."""


async def await_tallies(config: TallyConfig, order_ids: set[str], workers: Sequence[WorkerProcess[TallyConfig]],
                        timeout: float) -> list[dict[str, Any]]:
    """Every tally on the output topic, once each order id has one; WorkerExited if a worker stops first."""

    def all_tallied(values: list[dict[str, Any]]) -> bool:
        for worker in workers:
            if not worker.is_running():
                raise WorkerExited(f"worker {worker.config.worker_name} exited; its log ends with:\n"
                                   f"{worker.log_tail()}")
        return order_ids <= {value["order_id"] for value in values}

    return await collect_json(config.bootstrap, config.tallies_topic, all_tallied, timeout=timeout)
