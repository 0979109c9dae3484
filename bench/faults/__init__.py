"""The fault-injection suite: scenarios that break the platform mid-run and a checker that proves nothing broke."""

from bench.faults._check import Report
from bench.faults._cli import FULL, QUICK, main
from bench.faults._run import ALL, Environment, run_scenario

__all__ = ["ALL", "FULL", "QUICK", "Environment", "Report", "main", "run_scenario"]
