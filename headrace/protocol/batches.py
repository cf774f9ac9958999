"""`/v1/batches` shapes: CreateBatchRequest, Batch, ListBatchesResponse.

The lines of a batch's input, output and error files are JSON documents, not models here:
`batch/lines.py` reads and writes them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from headrace.protocol.common import RequestModel, WireModel, omitted_when_none

BatchStatus = Literal[
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]


class CreateBatchRequest(RequestModel):
    input_file_id: str = Field(min_length=1)
    # Checked by the route, so that an unsupported one gets a message naming what is.
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = None


class BatchError(WireModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(WireModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchRequestCounts(WireModel):
    total: int
    completed: int
    failed: int


class InputTokensDetails(WireModel):
    cached_tokens: int


class OutputTokensDetails(WireModel):
    reasoning_tokens: int = 0


class BatchUsage(WireModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class Batch(WireModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None = omitted_when_none()
    errors: BatchErrors | None = omitted_when_none()
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = omitted_when_none()
    error_file_id: str | None = omitted_when_none()
    created_at: int
    in_progress_at: int | None = omitted_when_none()
    expires_at: int | None = omitted_when_none()
    finalizing_at: int | None = omitted_when_none()
    completed_at: int | None = omitted_when_none()
    failed_at: int | None = omitted_when_none()
    expired_at: int | None = omitted_when_none()
    cancelling_at: int | None = omitted_when_none()
    cancelled_at: int | None = omitted_when_none()
    request_counts: BatchRequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None = None


class ListBatchesResponse(WireModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
