"""Where a raw webhook's record goes: its body digest's first 32 bits decide, the same for every replica."""

from __future__ import annotations

import hashlib

from connectors._receiver_sinks import digest_partition


def test_the_digest_spreads_bodies_over_every_partition_and_keeps_twins_together() -> None:
    digests = [hashlib.sha256(f"body-{n}".encode()).hexdigest() for n in range(600)]
    counts = [0] * 6
    for digest in digests:
        counts[digest_partition(digest, 6)] += 1
    assert min(counts) > 60  # about 100 each: the digest is uniform
    assert {digest_partition(d, 6) for d in digests[:1] * 3} == {digest_partition(digests[0], 6)}
