"""The direct access line writes what structlog's chain writes for the same request."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import structlog

from headrace.config import Settings
from headrace.observability.access_log import AccessLine
from headrace.observability.logging import access_fields, log_processors
from headrace.observability.request import RequestRecord

EMAIL = "carol@example.org"


def _record() -> RequestRecord:
    record = RequestRecord("req_0123456789abcdef", method="POST", path=f"/v1/files/{EMAIL}")
    record.project_id, record.org_id, record.tier = "proj_1", "org_1", "standard"
    record.model, record.status, record.rejection = f"model-of-{EMAIL}", 404, "not_found"
    record.mark("auth")
    return record


@pytest.mark.parametrize("redact", [True, False])
def test_the_direct_line_is_the_structlog_line(redact: bool) -> None:
    record = _record()
    out = io.StringIO()
    chain = structlog.wrap_logger(
        structlog.PrintLogger(file=out), processors=log_processors(redact=redact)
    )
    fields = access_fields(record, "ab" * 16)
    chain.info("request", **dict(fields))
    direct = io.StringIO()
    AccessLine(redact=redact, stream=direct).write(dict(fields))

    expected, got = json.loads(out.getvalue()), json.loads(direct.getvalue())
    assert list(got) == list(expected)  # same keys, same order
    assert got.pop("timestamp").endswith("Z")
    assert expected.pop("timestamp").endswith("Z")
    assert got == expected
    assert (EMAIL not in direct.getvalue()) is redact
    assert direct.getvalue().count("\n") == 1


def test_settings_choose_the_direct_line_for_json_at_info(tmp_path: Path) -> None:
    assert AccessLine.for_settings(Settings(data_dir=tmp_path)) is not None
    assert AccessLine.for_settings(Settings(data_dir=tmp_path, log_level="debug")) is not None
    assert AccessLine.for_settings(Settings(data_dir=tmp_path, log_level="warning")) is None
    assert AccessLine.for_settings(Settings(data_dir=tmp_path, log_format="console")) is None


async def test_lines_written_in_one_turn_of_the_loop_leave_in_one_write() -> None:
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    stream = Stream()
    line = AccessLine(redact=False, stream=stream)
    for i in range(3):
        line.write(access_fields(RequestRecord(f"req_{i}", method="GET", path="/health"), ""))
    assert writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert len(writes) == 1
    ids = [json.loads(text)["request_id"] for text in stream.getvalue().splitlines()]
    assert ids == ["req_0", "req_1", "req_2"]
    line.write(access_fields(RequestRecord("req_3", method="GET", path="/health"), ""))
    line.flush()  # as `Telemetry.close` does at shutdown
    assert json.loads(stream.getvalue().splitlines()[-1])["request_id"] == "req_3"
