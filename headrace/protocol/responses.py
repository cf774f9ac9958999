"""`/v1/responses` request, response object and stream-event shapes.

Items (messages, function calls and their outputs) travel as plain JSON objects: the API
edge checks and normalises them (`api/items.py`), and they are stored as they are served.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from headrace.protocol.common import NestedModel, RequestModel, WireModel, omitted_when_none

Item = dict[str, Any]
ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]

# --- request -------------------------------------------------------------------------------


class PromptParam(NestedModel):
    """A registry prompt: `version` unset means the prompt's current version."""

    id: str = Field(min_length=1)
    version: str | None = None
    variables: dict[str, str] | None = None


class ConversationParam(NestedModel):
    id: str = Field(min_length=1)


class StreamOptions(NestedModel):
    include_obfuscation: bool | None = None


class CreateResponse(RequestModel):
    """Every argument of the current API; those we cannot honour are refused by name in
    `api/routes/responses.py`, never silently ignored."""

    model: str
    input: str | list[Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationParam | None = None
    truncation: Literal["auto", "disabled"] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    prompt: PromptParam | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    # Accepted by the schema; refused by the route.
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    max_tool_calls: int | None = None
    top_logprobs: int | None = None
    prompt_cache_retention: str | None = None
    context_management: list[Any] | None = None


# --- response ------------------------------------------------------------------------------


class InputTokensDetails(WireModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(WireModel):
    reasoning_tokens: int = 0


class ResponseUsage(WireModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int


class ResponseError(WireModel):
    code: str
    message: str


class IncompleteDetails(WireModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseConversation(WireModel):
    id: str


class ResponsePrompt(WireModel):
    id: str
    version: str | None = None
    variables: dict[str, str] | None = None


class Response(WireModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[Item] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    conversation: ResponseConversation | None = None
    prompt: ResponsePrompt | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str = "default"
    store: bool = True
    temperature: float = 1.0
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float = 1.0
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = omitted_when_none()
    metadata: dict[str, str] = Field(default_factory=dict)
    user: str | None = omitted_when_none()
    safety_identifier: str | None = omitted_when_none()
    prompt_cache_key: str | None = omitted_when_none()
    background: bool = False


class DeletedResponse(WireModel):
    id: str
    object: Literal["response"] = "response"  # as the reference shows it
    deleted: bool = True


class ItemList(WireModel):
    """A page of items: `ResponseItemList` and `ConversationItemList` have this shape."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool
    first_id: str | None
    last_id: str | None


# --- stream events -------------------------------------------------------------------------


class ResponseEvent(WireModel):
    """`response.created` / `.in_progress` / `.completed` / `.incomplete` / `.failed`."""

    type: str
    sequence_number: int
    response: Response


class OutputItemEvent(WireModel):
    """`response.output_item.added` / `.done`."""

    type: str
    sequence_number: int
    output_index: int
    item: Item


class ContentPartEvent(WireModel):
    """`response.content_part.added` / `.done`."""

    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: Item


class OutputTextDeltaEvent(WireModel):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = Field(default_factory=list)


class OutputTextDoneEvent(WireModel):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = Field(default_factory=list)


class FunctionArgumentsDeltaEvent(WireModel):
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class FunctionArgumentsDoneEvent(WireModel):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    sequence_number: int
    item_id: str
    output_index: int
    name: str
    arguments: str


class ErrorEvent(WireModel):
    type: Literal["error"] = "error"
    sequence_number: int
    code: str | None
    message: str
    param: str | None


StreamEvent = (
    ResponseEvent
    | OutputItemEvent
    | ContentPartEvent
    | OutputTextDeltaEvent
    | OutputTextDoneEvent
    | FunctionArgumentsDeltaEvent
    | FunctionArgumentsDoneEvent
    | ErrorEvent
)
