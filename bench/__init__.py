"""Benchmarks: figures printed by `bin/bench`, recorded in BENCHMARKS.md; never timing assertions in tests."""
