"""`/v1/files` shapes: OpenAIFile, ListFilesResponse, DeleteFileResponse."""

from __future__ import annotations

from typing import Literal

from headrace.protocol.common import WireModel, omitted_when_none

# What an upload may name; `batch_output` files are written by batches only.
UPLOAD_PURPOSES = ("batch", "user_data")
FilePurpose = Literal["batch", "batch_output", "user_data"]


class OpenAIFile(WireModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = omitted_when_none()
    filename: str
    purpose: FilePurpose
    status: Literal["processed"] = "processed"  # deprecated by OpenAI, still required


class ListFilesResponse(WireModel):
    object: Literal["list"] = "list"
    data: list[OpenAIFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeleteFileResponse(WireModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
