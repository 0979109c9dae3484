"""The `switchboard` executable sets the garbage collector for a service, unless told to leave Python's defaults."""

from __future__ import annotations

import os
import subprocess
import sys

from switchboard.heap import ENV_GC, SERVICE_THRESHOLDS

# Runs the executable's entry with a main() that prints the thresholds it runs under, in a process of its own: the
# collector's settings are process-wide and must not leak into the test run.
_PROBE = ("import gc, switchboard.cli as cli; cli.main = lambda: print(gc.get_threshold()) or 0; "
          "raise SystemExit(cli.run())")


def _probe(gc_mode: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != ENV_GC}
    if gc_mode is not None:
        env[ENV_GC] = gc_mode
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)


def test_the_executable_collects_the_young_generation_less_often_by_default() -> None:
    result = _probe(None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(SERVICE_THRESHOLDS)


def test_python_leaves_the_interpreters_defaults() -> None:
    defaults = subprocess.run([sys.executable, "-c", "import gc; print(gc.get_threshold())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    result = _probe("python")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == defaults != str(SERVICE_THRESHOLDS)


def test_an_empty_mode_is_the_default() -> None:
    assert _probe("").stdout.strip() == str(SERVICE_THRESHOLDS)


def test_an_unknown_mode_is_refused_before_any_command_runs() -> None:
    result = _probe("fast")
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{ENV_GC}='fast' is not one of service, python" in result.stderr
