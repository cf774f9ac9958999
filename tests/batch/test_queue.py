"""The batch queue in the database (storage/batches.py), on SQLite and PostgreSQL: claims
are exclusive, lapsed leases are claimed again, a lost claim records nothing, and every
line's result is counted once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from headrace.storage.batches import Batches, StoredBatch
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher, new_key_text, parse_key
from headrace.storage.files import Files

LEASE = 10_000
BLANK = StoredBatch(
    id="batch_1", project_id="p1", org_id="o1", api_key_id="k1",
    endpoint="/v1/chat/completions", input_file_id="file-1", completion_window="24h",
    status="validating", metadata_=None, errors=None, model=None, output_file_id=None,
    error_file_id=None, created_at=100, expires_at=100 + 86_400, in_progress_at=None,
    finalizing_at=None, completed_at=None, failed_at=None, expired_at=None,
    cancelling_at=None, cancelled_at=None, total=0, completed=0, failed=0,
    input_tokens=0, cached_tokens=0, output_tokens=0,
)  # fmt: skip


async def _pairs(pairs: list[tuple[str, str]]) -> AsyncIterator[tuple[str, str]]:
    """A batch's (custom id, body) pairs as the worker hands them over: as they are read."""
    for pair in pairs:
        yield pair


async def _started(url: str, lines: int, cipher: ContentCipher | None = None) -> Batches:
    db = Database(url)
    await db.migrate()
    batches = Batches(db, cipher or ContentCipher([]))
    await batches.create(BLANK)
    pairs = [(f"c{i}", f'{{"n": {i}}}') for i in range(lines)]
    assert await batches.start("batch_1", _pairs(pairs), "m", now=101)
    return batches


async def test_claims_are_exclusive_and_in_order(database_url: str) -> None:
    batches = await _started(database_url, 10)
    first, second = await asyncio.gather(
        batches.claim("w1", 4, now_ms=0, lease_ms=LEASE),
        batches.claim("w2", 4, now_ms=0, lease_ms=LEASE),
    )
    taken = [c.line for c in first] + [c.line for c in second]
    assert len(taken) == len(set(taken)) == 8
    rest = await batches.claim("w3", 10, now_ms=0, lease_ms=LEASE)
    assert sorted(c.line for c in rest) == sorted(set(range(10)) - set(taken))
    assert await batches.claim("w3", 10, now_ms=0, lease_ms=LEASE) == []
    assert rest[0].body.startswith('{"n": ')
    assert rest[0].attempt == 1


async def test_a_lapsed_lease_is_claimed_again_and_the_old_claim_records_nothing(
    database_url: str,
) -> None:
    batches = await _started(database_url, 1)
    [dead] = await batches.claim("w1", 1, now_ms=0, lease_ms=LEASE)
    assert await batches.claim("w2", 1, now_ms=LEASE - 1, lease_ms=LEASE) == []
    [again] = await batches.claim("w2", 1, now_ms=LEASE + 1, lease_ms=LEASE)
    assert (again.line, again.attempt) == (0, 2)
    assert not await batches.finish("w1", dead, ok=True, result="late", tokens=(1, 0, 1))
    assert await batches.finish("w2", again, ok=True, result="won", tokens=(5, 2, 3))
    assert not await batches.finish("w2", again, ok=True, result="twice", tokens=(5, 2, 3))
    batch = await batches.by_id("batch_1")
    assert batch is not None
    assert (batch.completed, batch.failed, batch.input_tokens, batch.output_tokens) == (
        1, 0, 5, 3,
    )  # fmt: skip
    assert [r.result async for r in batches.results("batch_1")] == ["won"]
    assert [b.id for b in await batches.settled()] == ["batch_1"]


async def test_renewed_leases_are_not_taken_and_a_restart_releases_its_own(
    database_url: str,
) -> None:
    batches = await _started(database_url, 3)
    held = await batches.claim("w1", 2, now_ms=0, lease_ms=LEASE)
    await batches.renew("w1", held, until_ms=5 * LEASE)
    assert [c.line for c in await batches.claim("w2", 3, now_ms=2 * LEASE, lease_ms=LEASE)] == [2]
    assert await batches.release("w1") == 2  # w1 restarted: its lines are pending at once
    assert len(await batches.claim("w2", 3, now_ms=2 * LEASE, lease_ms=LEASE)) == 2


async def test_postponed_lines_wait_for_their_time(database_url: str) -> None:
    batches = await _started(database_url, 1)
    [line] = await batches.claim("w1", 1, now_ms=0, lease_ms=LEASE)
    await batches.postpone("w1", line, until_ms=500)
    assert await batches.claim("w1", 1, now_ms=499, lease_ms=LEASE) == []
    assert len(await batches.claim("w1", 1, now_ms=501, lease_ms=LEASE)) == 1


async def test_cancel_skips_unrun_lines_and_expiry_fails_them(database_url: str) -> None:
    batches = await _started(database_url, 4)
    [running] = await batches.claim("w1", 1, now_ms=0, lease_ms=LEASE)
    cancelled = await batches.cancel("p1", "batch_1", now=200)
    assert cancelled is not None
    assert cancelled.status == "cancelling"
    assert await batches.cancel("other", "batch_1", now=200) is None  # not its project
    assert await batches.skip_unrun(now_ms=1) == 3
    assert await batches.settled() == []  # one line still running
    assert await batches.finish("w1", running, ok=True, result="r", tokens=(1, 0, 1))
    assert [b.status for b in await batches.settled()] == ["cancelling"]

    await batches.create(replace(BLANK, id="batch_2", expires_at=150))
    assert await batches.start("batch_2", _pairs([("a", "{}"), ("b", "{}")]), None, now=101)
    assert await batches.expire_unrun(now=149, now_ms=0, result=lambda *a: "x") == 0
    made = await batches.expire_unrun(now=150, now_ms=0, result=lambda b, n, c: f"{b}/{n}/{c}")
    assert made == 2
    assert [r.result async for r in batches.results("batch_2")] == ["batch_2/0/a", "batch_2/1/b"]
    late = await batches.by_id("batch_2")
    assert late is not None
    assert late.failed == 2
    assert await batches.has_expired_lines("batch_2")


async def test_only_a_validating_batch_starts_or_fails(database_url: str) -> None:
    batches = await _started(database_url, 1)
    assert not await batches.start("batch_1", _pairs([("x", "{}")]), None, now=102)
    assert not await batches.fail("batch_1", [{"code": "x"}], now=102)
    await batches.create(replace(BLANK, id="batch_3"))
    assert await batches.fail("batch_3", [{"code": "empty_file", "message": "m"}], now=102)
    failed = await batches.get("p1", "batch_3")
    assert failed is not None
    assert failed.status == "failed"
    assert failed.errors


async def test_line_bodies_and_results_are_sealed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    cipher = ContentCipher([parse_key(new_key_text())])
    batches = await _started(url, 1, cipher)
    [line] = await batches.claim("w", 1, now_ms=0, lease_ms=LEASE)
    assert line.body == '{"n": 0}'
    assert await batches.finish("w", line, ok=True, result="secret result", tokens=(0, 0, 0))
    db = Database(url)
    async with db.engine.connect() as conn:
        from sqlalchemy import text

        body, result = (await conn.execute(text("SELECT body, result FROM batch_lines"))).one()
    await db.close()
    assert body.startswith("enc:v1:")
    assert result.startswith("enc:v1:")
    assert [r.result async for r in batches.results("batch_1")] == ["secret result"]


async def test_files_stream_to_disk_sealed_and_page(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    cipher = ContentCipher([parse_key(new_key_text())])
    files = Files(db, tmp_path / "files", cipher)
    payload = b"".join(b"line %d\n" % i for i in range(300_000))  # over two 1 MiB chunks

    async def chunks() -> object:
        for start in range(0, len(payload), 65_536):
            yield payload[start : start + 65_536]

    stored = await files.write(
        "p1", filename="a.jsonl", purpose="batch", chunks=chunks(), max_bytes=10**8, now=1
    )
    assert stored.bytes == len(payload)
    assert b"line 1\n" not in (tmp_path / "files" / stored.id).read_bytes()
    content = await files.read("p1", stored.id)
    assert content is not None
    assert b"".join([c async for c in content]) == payload
    lines = await files.lines("p1", stored.id)
    assert lines is not None
    assert len([x async for x in lines]) == 300_000
    assert await files.read("p2", stored.id) is None
    for n in range(2, 5):
        await files.write("p1", filename=f"{n}", purpose="user_data", chunks=chunks(),
                          max_bytes=10**8, now=n)  # fmt: skip
    page, more = await files.page("p1", limit=2)
    assert [f.filename for f in page] == ["4", "3"]
    assert more
    page, more = await files.page("p1", limit=2, after=page[-1].id)
    assert [f.filename for f in page] == ["2", "a.jsonl"]
    assert not more
    page, _ = await files.page("p1", purpose="batch", order="asc")
    assert [f.id for f in page] == [stored.id]
    assert await files.delete("p1", stored.id)
    assert not (tmp_path / "files" / stored.id).exists()
    assert not await files.delete("p1", stored.id)
    await db.close()


def test_sealed_bytes_name_their_key_and_open_after_rotation() -> None:
    old, new = new_key_text(), new_key_text()
    before = ContentCipher.from_texts(old)
    sealed = before.seal_bytes(b"\x00binary\xff")
    assert sealed.startswith(b"hrenc:v1:")
    assert b"binary" not in sealed
    rotated = ContentCipher.from_texts(new, [old])
    assert rotated.open_bytes(sealed) == b"\x00binary\xff"
    assert rotated.open_bytes(b"plain bytes") == b"plain bytes"
    assert ContentCipher([]).seal_bytes(b"x") == b"x"
    from headrace.storage.encryption import DecryptionError

    with pytest.raises(DecryptionError):
        ContentCipher.from_texts(new).open_bytes(sealed)
    with pytest.raises(DecryptionError):
        before.open_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
