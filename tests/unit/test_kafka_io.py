"""Switchboard's producer defaults: the partitioner is aiokafka's murmur2 choice, each key's hash remembered."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from switchboard.kafka_io import Murmur2Partitioner


@given(st.lists(st.binary(max_size=64), max_size=50), st.integers(1, 64))
def test_every_key_lands_where_aiokafkas_default_partitioner_puts_it(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    ours, theirs = Murmur2Partitioner(remember=8), DefaultPartitioner()
    for key in keys + keys:  # the second time from the remembered hashes (and past the bound of 8)
        assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    assert Murmur2Partitioner()(None, [0, 1, 2], [2]) == 2
