"""`/v1/organization/usage/completions`, `.../usage/embeddings` and `/v1/organization/costs`,
from the usage ledger.

Admin keys only (`hr-admin-...`), as OpenAI's are. Arrays are repeated query parameters:
`?group_by=model&group_by=project_id` (the `[]` suffix is accepted too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request

from headrace.api.state import Admin, AppState, State
from headrace.control import usage as usage_service
from headrace.errors import InvalidRequestError
from headrace.protocol.usage import (
    CostAmount,
    CostsResult,
    UsageCompletionsResult,
    UsageEmbeddingsResult,
    UsageResponse,
    UsageTimeBucket,
)
from headrace.storage.usage import UsageTotals

router = APIRouter(tags=["organization"])
USAGE_GROUPS = ("project_id", "api_key_id", "model")
COST_GROUPS = ("project_id", "api_key_id", "line_item")
# The generation APIs, as usage events name them; everything else is not a completion.
COMPLETION_ENDPOINTS = ("chat.completions", "completions", "responses")


def _query(
    request: Request,
    start_time: int,
    end_time: int | None,
    bucket_width: str,
    limit: int | None,
    page: str | None,
    endpoints: tuple[str, ...] = (),
) -> usage_service.Query:
    def many(name: str) -> list[str]:
        params = request.query_params
        return params.getlist(name) + params.getlist(f"{name}[]")

    return usage_service.Query(
        start_time=start_time,
        end_time=end_time,
        bucket_width=bucket_width,
        group_by=many("group_by"),
        project_ids=many("project_ids"),
        api_key_ids=many("api_key_ids"),
        models=many("models"),
        endpoints=endpoints,
        limit=limit,
        page=page,
    )


@router.get("/v1/organization/usage/completions")
async def usage_completions(
    request: Request,
    state: State,
    _: Admin,
    start_time: int,
    end_time: int | None = None,
    bucket_width: str = "1d",
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> UsageResponse:
    q = _query(request, start_time, end_time, bucket_width, limit, page, COMPLETION_ENDPOINTS)
    return await _usage(state, q, _usage_result)


@router.get("/v1/organization/usage/embeddings")
async def usage_embeddings(
    request: Request,
    state: State,
    _: Admin,
    start_time: int,
    end_time: int | None = None,
    bucket_width: str = "1d",
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> UsageResponse:
    q = _query(request, start_time, end_time, bucket_width, limit, page, ("embeddings",))
    return await _usage(state, q, _embeddings_result)


async def _usage(
    state: AppState,
    q: usage_service.Query,
    result: Callable[[UsageTotals], UsageCompletionsResult | UsageEmbeddingsResult],
) -> UsageResponse:
    page = await usage_service.usage_page(
        state.db,
        q,
        allowed_groups=USAGE_GROUPS,
        page_sizes=usage_service.USAGE_PAGE.get(q.bucket_width, (7, 31)),
    )
    return UsageResponse(
        data=[
            UsageTimeBucket(
                start_time=b.start_time,
                end_time=b.end_time,
                results=[result(r) for r in b.results],
            )
            for b in page.buckets
        ],
        has_more=page.next_page is not None,
        next_page=page.next_page,
    )


@router.get("/v1/organization/costs")
async def costs(
    request: Request,
    state: State,
    _: Admin,
    start_time: int,
    end_time: int | None = None,
    bucket_width: str = "1d",
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> UsageResponse:
    if bucket_width != "1d":
        raise InvalidRequestError("Costs come in 1d buckets only.", param="bucket_width")
    q = _query(request, start_time, end_time, bucket_width, limit, page)
    result = await usage_service.usage_page(
        state.db, q, allowed_groups=COST_GROUPS, page_sizes=usage_service.COSTS_PAGE
    )
    by_line_item = "line_item" in q.group_by
    return UsageResponse(
        data=[
            UsageTimeBucket(
                start_time=b.start_time,
                end_time=b.end_time,
                results=_cost_results(b.results, by_line_item),
            )
            for b in result.buckets
        ],
        has_more=result.next_page is not None,
        next_page=result.next_page,
    )


def _usage_result(r: UsageTotals) -> UsageCompletionsResult:
    return UsageCompletionsResult(
        input_tokens=r.input_tokens,
        input_cached_tokens=r.cached_tokens,
        input_uncached_tokens=r.input_tokens - r.cached_tokens,
        output_tokens=r.output_tokens,
        input_text_tokens=r.input_tokens,
        output_text_tokens=r.output_tokens,
        input_cached_text_tokens=r.cached_tokens,
        num_model_requests=r.requests,
        project_id=r.group.get("project_id"),
        api_key_id=r.group.get("api_key_id"),
        model=r.group.get("model"),
    )


def _embeddings_result(r: UsageTotals) -> UsageEmbeddingsResult:
    return UsageEmbeddingsResult(
        input_tokens=r.input_tokens,
        num_model_requests=r.requests,
        project_id=r.group.get("project_id"),
        api_key_id=r.group.get("api_key_id"),
        model=r.group.get("model"),
    )


def _cost_results(rows: list[UsageTotals], by_line_item: bool) -> list[CostsResult]:
    if not by_line_item:
        return [
            CostsResult(
                amount=CostAmount(value=(r.input_cost_nanousd + r.output_cost_nanousd) / 1e9),
                project_id=r.group.get("project_id"),
                api_key_id=r.group.get("api_key_id"),
            )
            for r in rows
        ]
    out = []
    for r in rows:
        for part, nano, tokens in (
            ("input", r.input_cost_nanousd, r.input_tokens),
            ("output", r.output_cost_nanousd, r.output_tokens),
        ):
            out.append(
                CostsResult(
                    amount=CostAmount(value=nano / 1e9),
                    line_item=f"{r.group.get('model')}, {part}",
                    project_id=r.group.get("project_id"),
                    api_key_id=r.group.get("api_key_id"),
                    quantity=float(tokens),
                    quantity_unit="tokens",
                )
            )
    return out
