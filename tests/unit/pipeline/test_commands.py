"""The agents read raw record values: anything that is not a JSON command is a CommandError (a dead letter)."""

from __future__ import annotations

import json

import pytest

from streams.pipeline._commands import CommandError, check_command, check_job
from streams.pipeline._templates import check_template_command

TICK = {"kind": "tick", "v": 1, "at": 1.5}


@pytest.mark.parametrize("check", [check_command, check_job])
def test_a_command_as_raw_json_bytes_reads_like_the_parsed_one(check: object) -> None:
    assert callable(check)
    assert check(json.dumps(TICK).encode()) == check(dict(TICK)) == TICK


@pytest.mark.parametrize("check", [check_command, check_job, check_template_command])
@pytest.mark.parametrize(("raw", "reason"), [(b"\xffnot json", "not JSON"), (b"{broken", "not JSON"),
                                             (b"[1, 2]", "must be a JSON object"),
                                             (b'"text"', "must be a JSON object")])
def test_a_record_that_is_not_a_json_object_is_refused_with_its_reason(check: object, raw: bytes,
                                                                        reason: str) -> None:
    assert callable(check)
    with pytest.raises(CommandError, match=reason):
        check(raw)
