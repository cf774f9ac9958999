"""`/v1/files`: upload, list, retrieve, download and delete files of the caller's project.

An id of another project is answered exactly as an unknown one: 404. An upload is copied to
the file store a chunk at a time as the multipart parser spools it (never whole in memory);
the receive stage caps this route's body at `files.max_bytes` instead of the usual limit.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal, NoReturn

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from headrace.api.file_expiry import expiry_seconds
from headrace.api.state import Caller, State
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.protocol.files import (
    UPLOAD_PURPOSES,
    DeleteFileResponse,
    ListFilesResponse,
    OpenAIFile,
)
from headrace.storage.files import CHUNK, StoredFile

router = APIRouter(tags=["files"])
PATH = "/v1/files"
MAX_FILENAME = 255


@router.post(PATH)
async def upload_file(request: Request, state: State, caller: Caller) -> OpenAIFile:
    form = await request.form(max_files=1, max_fields=6)
    try:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("Missing required parameter: 'file'.", param="file")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidRequestError("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequestError(
                f"Invalid value for 'purpose': {purpose!r}. Supported: "
                + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
                + ".",
                param="purpose",
            )
        # The SDK sends the policy as `expires_after[anchor]` and `expires_after[seconds]`.
        policy = {k: form.get(f"expires_after[{k}]") for k in ("anchor", "seconds")}
        given = any(v is not None for v in policy.values())
        expires_after = expiry_seconds(policy if given else None, param="expires_after")
        now = int(time.time())
        stored = await state.files.write(
            caller.project_id,
            filename=(upload.filename or "file")[:MAX_FILENAME],
            purpose=purpose,
            chunks=_chunks(upload),
            max_bytes=state.settings.files.max_bytes,
            now=now,
            expires_at=None if expires_after is None else now + expires_after,
        )
    finally:
        await form.close()
    return _wire(stored)


@router.get(PATH)
async def list_files(
    state: State,
    caller: Caller,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> ListFilesResponse:
    files, has_more = await state.files.page(
        caller.project_id, purpose=purpose, limit=limit, order=order, after=after
    )
    data = [_wire(f) for f in files]
    return ListFilesResponse(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get(PATH + "/{file_id}")
async def retrieve_file(file_id: str, state: State, caller: Caller) -> OpenAIFile:
    found = await state.files.get(caller.project_id, file_id)
    return _wire(found or _missing(file_id))


@router.get(PATH + "/{file_id}/content")
async def file_content(file_id: str, state: State, caller: Caller) -> StreamingResponse:
    chunks = await state.files.read(caller.project_id, file_id)
    if chunks is None:
        _missing(file_id)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.delete(PATH + "/{file_id}")
async def delete_file(file_id: str, state: State, caller: Caller) -> DeleteFileResponse:
    if not await state.files.delete(caller.project_id, file_id):
        _missing(file_id)
    return DeleteFileResponse(id=file_id, deleted=True)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


def _missing(file_id: str) -> NoReturn:
    raise NotFoundError(f"No such File object: {file_id}", param="id")


def _wire(f: StoredFile) -> OpenAIFile:
    return OpenAIFile(
        id=f.id,
        bytes=f.bytes,
        created_at=f.created_at,
        expires_at=f.expires_at,
        filename=f.filename,
        purpose=f.purpose,
    )
