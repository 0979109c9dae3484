"""Unit tests of the event schemas, registry, codec and compatibility checks."""
