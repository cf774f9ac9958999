"""`/v1/batches`: create, retrieve, list and cancel the caller's project's batches.

What can be checked at once is a 400 here (endpoint, window, the input file and its
purpose); the file's lines are checked by the batch worker while the batch is `validating`,
and a bad file fails the batch with its `errors`, as OpenAI does. An id of another project
is answered exactly as an unknown one: 404.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, NoReturn

from fastapi import APIRouter, Query

from headrace.api.chat_request import check_metadata
from headrace.api.file_expiry import expiry_seconds
from headrace.api.state import AppState, Caller, State
from headrace.batch.lines import ENDPOINTS
from headrace.errors import ConflictError, InvalidRequestError, NotFoundError
from headrace.protocol.batches import (
    Batch,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    BatchUsage,
    CreateBatchRequest,
    InputTokensDetails,
    ListBatchesResponse,
    OutputTokensDetails,
)
from headrace.storage.batches import CANCELLABLE, StoredBatch

router = APIRouter(tags=["batches"])
WINDOWS = {"24h": 24 * 3600}


@router.post("/v1/batches")
async def create_batch(body: CreateBatchRequest, state: State, caller: Caller) -> Batch:
    if body.endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"Unsupported endpoint {body.endpoint!r}. Supported: {', '.join(ENDPOINTS)}.",
            param="endpoint",
        )
    window = WINDOWS.get(body.completion_window)
    if window is None:
        raise InvalidRequestError(
            f"Unsupported completion_window {body.completion_window!r}: only '24h'.",
            param="completion_window",
        )
    if body.metadata is not None:
        check_metadata(body.metadata)
    output_expiry = expiry_seconds(body.output_expires_after, param="output_expires_after")
    source = await state.files.get(caller.project_id, body.input_file_id)
    if source is None:
        raise NotFoundError(f"No such File object: {body.input_file_id}", param="input_file_id")
    if source.purpose != "batch":
        raise InvalidRequestError(
            f"The input file must be uploaded with purpose 'batch', not {source.purpose!r}.",
            param="input_file_id",
        )
    now = int(time.time())
    batch = await state.batches.create(
        StoredBatch(
            id=f"batch_{secrets.token_hex(12)}",
            project_id=caller.project_id,
            org_id=caller.org_id,
            api_key_id=caller.key_id,
            endpoint=body.endpoint,
            input_file_id=body.input_file_id,
            completion_window=body.completion_window,
            status="validating",
            metadata_=body.metadata,
            errors=None,
            model=None,
            output_file_id=None,
            error_file_id=None,
            created_at=now,
            expires_at=now + window,
            in_progress_at=None,
            finalizing_at=None,
            completed_at=None,
            failed_at=None,
            expired_at=None,
            cancelling_at=None,
            cancelled_at=None,
            total=0,
            completed=0,
            failed=0,
            input_tokens=0,
            cached_tokens=0,
            output_tokens=0,
            output_expires_after_s=output_expiry,
        )
    )
    _wake(state)
    return wire(batch)


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, state: State, caller: Caller) -> Batch:
    found = await state.batches.get(caller.project_id, batch_id)
    return wire(found or _missing(batch_id))


@router.get("/v1/batches")
async def list_batches(
    state: State,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> ListBatchesResponse:
    batches, has_more = await state.batches.page(caller.project_id, limit=limit, after=after)
    data = [wire(b) for b in batches]
    return ListBatchesResponse(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, state: State, caller: Caller) -> Batch:
    before = await state.batches.get(caller.project_id, batch_id)
    if before is None:
        _missing(batch_id)
    if before.status not in (*CANCELLABLE, "cancelling", "cancelled"):
        raise ConflictError(f"Cannot cancel a batch with status '{before.status}'.")
    cancelled = await state.batches.cancel(caller.project_id, batch_id, int(time.time()))
    _wake(state)
    return wire(cancelled or _missing(batch_id))


def _wake(state: AppState) -> None:
    if state.batch_worker is not None:
        state.batch_worker.wake()


def _missing(batch_id: str) -> NoReturn:
    raise NotFoundError(f"No such Batch object: {batch_id}", param="batch_id")


def wire(b: StoredBatch) -> Batch:
    errors = (
        BatchErrors(data=[BatchError.model_validate(e) for e in b.errors]) if b.errors else None
    )
    return Batch(
        id=b.id,
        endpoint=b.endpoint,
        model=b.model,
        errors=errors,
        input_file_id=b.input_file_id,
        completion_window=b.completion_window,
        status=b.status,
        output_file_id=b.output_file_id,
        error_file_id=b.error_file_id,
        created_at=b.created_at,
        in_progress_at=b.in_progress_at,
        expires_at=b.expires_at,
        finalizing_at=b.finalizing_at,
        completed_at=b.completed_at,
        failed_at=b.failed_at,
        expired_at=b.expired_at,
        cancelling_at=b.cancelling_at,
        cancelled_at=b.cancelled_at,
        request_counts=BatchRequestCounts(total=b.total, completed=b.completed, failed=b.failed),
        usage=BatchUsage(
            input_tokens=b.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=b.cached_tokens),
            output_tokens=b.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            total_tokens=b.input_tokens + b.output_tokens,
        ),
        metadata=b.metadata_,
    )
