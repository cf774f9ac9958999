"""Repository for files: metadata rows scoped by project, bytes on local disk.

Bytes are written as they arrive (never held whole in memory) to a temporary file that is
renamed into place once complete, then the row is committed: a crash leaves at worst an
orphan temporary file, never a row without bytes. With an encryption key the bytes are
stored as sealed chunks, each `<4-byte length><ContentCipher.seal_bytes(chunk)>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sqlalchemy import ColumnElement, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.chunk_lines import split_lines
from headrace.errors import PayloadTooLargeError
from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.schema import FileRow

CHUNK = 1 << 20  # bytes sealed (and read) at a time
_LENGTH = struct.Struct(">I")
Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None = None


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


class Files:
    """Uploaded and generated files: rows in the database, content on disk. A file past its
    `expires_at` is gone for every read at once, and `purge_expired` removes it."""

    def __init__(
        self,
        db: Database,
        directory: Path,
        cipher: ContentCipher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._dir = directory
        self._cipher = cipher
        self._clock = clock

    async def write(
        self,
        project_id: str,
        *,
        filename: str,
        purpose: str,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
        now: int,
        file_id: str | None = None,
        expires_at: int | None = None,
    ) -> StoredFile:
        """Store what `chunks` yields as a file of `project_id`; 413 past `max_bytes`.
        A given `file_id` replaces the file of that id (a batch's output written again)."""
        file_id = file_id or new_file_id()
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        tmp = self._dir / f".{file_id}.{secrets.token_hex(4)}.part"
        sealed = self._cipher.enabled
        size = 0
        out = await asyncio.to_thread(tmp.open, "wb")
        try:
            pending = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(
                        f"File too large: the limit is {max_bytes} bytes.", param="file"
                    )
                pending += chunk
                while len(pending) >= CHUNK:
                    await asyncio.to_thread(self._put, out, bytes(pending[:CHUNK]), sealed)
                    del pending[:CHUNK]
            if pending:
                await asyncio.to_thread(self._put, out, bytes(pending), sealed)
            await asyncio.to_thread(out.close)
            await asyncio.to_thread(os.replace, tmp, self._path(file_id))
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
        row = FileRow(
            id=file_id,
            project_id=project_id,
            filename=filename,
            purpose=purpose,
            bytes=size,
            sealed=sealed,
            created_at=now,
            expires_at=expires_at,
        )
        async with self._db.session.begin() as session:
            await session.execute(delete(FileRow).where(FileRow.id == file_id))
            session.add(row)
        return _stored(row)

    async def get(self, project_id: str, file_id: str) -> StoredFile | None:
        async with self._db.session() as session:
            row = await _row(session, project_id, file_id, self._now())
        return None if row is None else _stored(row)

    async def page(
        self,
        project_id: str,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        order: Order = "desc",
        after: str | None = None,
    ) -> tuple[list[StoredFile], bool]:
        """A page of the project's files by creation time, and whether more follow."""
        key, now = tuple_(FileRow.created_at, FileRow.id), self._now()
        stmt = select(FileRow).where(FileRow.project_id == project_id, _live(now))
        if purpose is not None:
            stmt = stmt.where(FileRow.purpose == purpose)
        async with self._db.session() as session:
            if after is not None:
                cursor = await _row(session, project_id, after, now)
                if cursor is not None:
                    edge = tuple_(cursor.created_at, cursor.id)
                    stmt = stmt.where(key > edge if order == "asc" else key < edge)
            columns = (FileRow.created_at, FileRow.id)
            ordered = [c.asc() if order == "asc" else c.desc() for c in columns]
            rows = list(await session.scalars(stmt.order_by(*ordered).limit(limit + 1)))
        return [_stored(r) for r in rows[:limit]], len(rows) > limit

    async def delete(self, project_id: str, file_id: str) -> bool:
        async with self._db.session.begin() as session:
            row = await _row(session, project_id, file_id, self._now())
            if row is None:
                return False
            await session.delete(row)
        await asyncio.to_thread(self._path(file_id).unlink, missing_ok=True)
        return True

    async def read(self, project_id: str, file_id: str) -> AsyncIterator[bytes] | None:
        """The file's bytes as chunks (opened when sealed), or None for no such file."""
        async with self._db.session() as session:
            row = await _row(session, project_id, file_id, self._now())
        if row is None:
            return None
        return self._chunks(self._path(file_id), row.sealed)

    async def lines(self, project_id: str, file_id: str) -> AsyncIterator[bytes] | None:
        """The file's lines (without their line breaks), or None for no such file."""
        chunks = await self.read(project_id, file_id)
        return None if chunks is None else split_lines(chunks)

    async def purge_expired(self) -> int:
        """Delete the files past their expiry, rows and content; how many."""
        async with self._db.session.begin() as session:
            ids = list(await session.scalars(select(FileRow.id).where(~_live(self._now()))))
            if ids:
                await session.execute(delete(FileRow).where(FileRow.id.in_(ids)))
        for file_id in ids:
            await asyncio.to_thread(self._path(file_id).unlink, missing_ok=True)
        return len(ids)

    def _now(self) -> int:
        return int(self._clock())

    def _path(self, file_id: str) -> Path:
        return self._dir / file_id

    def _put(self, out: BinaryIO, data: bytes, sealed: bool) -> None:
        if sealed:
            data = self._cipher.seal_bytes(data)
            out.write(_LENGTH.pack(len(data)))
        out.write(data)

    async def _chunks(self, path: Path, sealed: bool) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while True:
                if sealed:
                    head = await asyncio.to_thread(handle.read, _LENGTH.size)
                    if not head:
                        return
                    (length,) = _LENGTH.unpack(head)
                    data = await asyncio.to_thread(handle.read, length)
                    yield self._cipher.open_bytes(data)
                else:
                    data = await asyncio.to_thread(handle.read, CHUNK)
                    if not data:
                        return
                    yield data
        finally:
            with contextlib.suppress(OSError):
                handle.close()


def _live(now: int) -> ColumnElement[bool]:
    return or_(FileRow.expires_at.is_(None), FileRow.expires_at > now)


async def _row(session: AsyncSession, project_id: str, file_id: str, now: int) -> FileRow | None:
    return await session.scalar(
        select(FileRow).where(FileRow.id == file_id, FileRow.project_id == project_id, _live(now))
    )


def _stored(row: FileRow) -> StoredFile:
    return StoredFile(row.id, row.filename, row.purpose, row.bytes, row.created_at, row.expires_at)
