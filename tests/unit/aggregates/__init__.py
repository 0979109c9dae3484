"""Unit tests of the aggregates, their replay and their translation to Avro records."""
