"""Stateful stream agents (faust-streaming, RocksDB tables with changelogs) that run the message pipeline."""
