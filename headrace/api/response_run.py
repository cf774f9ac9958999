"""One response being produced: engine events into the Response object, or into its
stream of typed events, and the stored copy once it has ended.

Streamed, a text answer is exactly this sequence (`sequence_number` counts from 0):

    response.created, response.in_progress,
    response.output_item.added, response.content_part.added,
    response.output_text.delta ..., response.output_text.done,
    response.content_part.done, response.output_item.done,
    response.completed | response.incomplete | response.failed

With tools, the message opens at its first text, and each tool call follows as a
`function_call` item (`output_item.added`, `function_call_arguments.delta` / `.done`,
`output_item.done`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from headrace.api import sse
from headrace.api.generation import merged_events
from headrace.api.generation_response import Meter
from headrace.api.items import new_id
from headrace.context.tool_calls import ParsedToolCall, ToolCallStream, parse_tool_calls
from headrace.engine.interface import (
    Engine,
    EngineError,
    Finished,
    GenerationEvent,
    GenerationRequest,
)
from headrace.observability.request import timed
from headrace.protocol.responses import (
    ContentPartEvent,
    FunctionArgumentsDeltaEvent,
    FunctionArgumentsDoneEvent,
    IncompleteDetails,
    InputTokensDetails,
    OutputItemEvent,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    Response,
    ResponseError,
    ResponseEvent,
    ResponseUsage,
    StreamEvent,
)
from headrace.safety.placeholders import Masker, restore_events
from headrace.storage.conversations import Conversations
from headrace.storage.responses import Responses, StoredResponse

Item = dict[str, Any]


@dataclass(slots=True)
class Stored:
    """Where a finished response goes: the response store (None: `store=false` or a
    retention of 0 days) and the conversation it continues (None: none)."""

    project_id: str
    responses: Responses | None
    conversations: Conversations | None
    conversation_id: str | None
    inputs: list[Item]

    async def save(self, response: Response) -> None:
        if self.responses is not None:
            stored = StoredResponse(
                response.id,
                response.previous_response_id,
                self.conversation_id,
                response.status,
                response.model_dump(mode="json"),
                response.created_at,
            )
            await self.responses.save(self.project_id, stored, self.inputs, response.output)
        if self.conversations is not None and self.conversation_id is not None:
            await self.conversations.add_items(
                self.project_id,
                self.conversation_id,
                self.inputs + response.output,
                int(time.time()),
            )


def _text_part(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(item_id: str, text: str | None, status: str) -> Item:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def _call_item(call: ParsedToolCall, arguments: str, status: str) -> Item:
    return {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


@dataclass(slots=True, kw_only=True)
class ResponseRun(Meter):
    shell: Response  # the response as created: settings, no output yet
    store: Stored
    parse_calls: bool = False  # tools were offered: the output may hold tool calls
    masker: Masker | None = None  # PII mode `mask`: placeholders restored in the output
    finish_reason: str = "stop"
    _seq: int = 0
    _output: list[Item] = field(default_factory=list)

    async def complete(self, engine: Engine, request: GenerationRequest) -> Response:
        self.engaged = True
        parts: list[str] = []
        try:
            async for _, ev in timed(self._events(engine, request), self.record):
                if isinstance(ev, Finished):
                    self._finish(ev)
                else:
                    self.generated_tokens += len(ev.token_ids)
                    parts.append(ev.text)
        except EngineError as exc:
            # Kept as `failed` (retrievable), and answered as chat answers a failure: 500.
            await self.store.save(self._final(error=str(exc)))
            raise
        text = "".join(parts)
        content, calls = parse_tool_calls(text) if self.parse_calls else (text, [])
        if content.strip() or not calls:
            self._output.append(_message(new_id("msg"), content, "completed"))
        self._output.extend(_call_item(c, c.arguments, "completed") for c in calls)
        response = self._final()
        await self.store.save(response)
        return response

    async def stream(self, engine: Engine, request: GenerationRequest) -> AsyncIterator[bytes]:
        yield self._event(ResponseEvent, "response.created", response=self.shell)
        yield self._event(ResponseEvent, "response.in_progress", response=self.shell)
        message: _OpenMessage | None = None
        if not self.parse_calls:
            message = self._open_message()
            for chunk in message.opening:
                yield chunk
        calls = ToolCallStream()
        self.engaged = True
        try:
            async for _, ev in timed(self._events(engine, request), self.record):
                if isinstance(ev, Finished):
                    self._finish(ev)
                    text = calls.flush() if self.parse_calls else ""
                    done: list[ParsedToolCall] = []
                else:
                    self.generated_tokens += len(ev.token_ids)
                    text, done = calls.push(ev.text) if self.parse_calls else (ev.text, [])
                if text and message is None:
                    message = self._open_message()
                    for chunk in message.opening:
                        yield chunk
                if text and message is not None:
                    message.text.append(text)
                    yield self._event(
                        OutputTextDeltaEvent,
                        None,
                        item_id=message.id,
                        output_index=message.index,
                        content_index=0,
                        delta=text,
                    )
                for call in done:
                    for chunk in self._stream_call(call):
                        yield chunk
        except EngineError as exc:
            self.finish_reason = "error"
            failed = self._final(error=str(exc), open_message=message)
            await self.store.save(failed)
            yield self._event(ResponseEvent, "response.failed", response=failed)
            return
        if message is not None:
            for chunk in self._close_message(message):
                yield chunk
        response = self._final()
        await self.store.save(response)
        kind = "response.completed" if response.status == "completed" else "response.incomplete"
        yield self._event(ResponseEvent, kind, response=response)

    def _events(
        self, engine: Engine, request: GenerationRequest
    ) -> AsyncIterator[tuple[int, GenerationEvent]]:
        """The engine's events, placeholders restored, through the check-output stage, as
        chat's are."""
        events = merged_events(engine, [request])
        if self.masker is not None:
            events = restore_events(events, self.masker)
        return self.checked(events, engine, [request])

    def _open_message(self) -> _OpenMessage:
        message = _OpenMessage(new_id("msg"), len(self._output))
        self._output.append(_message(message.id, None, "in_progress"))
        message.opening = [
            self._event(
                OutputItemEvent,
                "response.output_item.added",
                output_index=message.index,
                item=_message(message.id, None, "in_progress"),
            ),
            self._event(
                ContentPartEvent,
                "response.content_part.added",
                item_id=message.id,
                output_index=message.index,
                content_index=0,
                part=_text_part(""),
            ),
        ]
        return message

    def _close_message(self, message: _OpenMessage) -> list[bytes]:
        text = "".join(message.text)
        done = _message(message.id, text, "completed")
        self._output[message.index] = done
        where = {"item_id": message.id, "output_index": message.index, "content_index": 0}
        return [
            self._event(OutputTextDoneEvent, None, text=text, **where),
            self._event(
                ContentPartEvent, "response.content_part.done", part=_text_part(text), **where
            ),
            self._event(
                OutputItemEvent,
                "response.output_item.done",
                output_index=message.index,
                item=done,
            ),
        ]

    def _stream_call(self, call: ParsedToolCall) -> list[bytes]:
        index = len(self._output)
        added = _call_item(call, "", "in_progress")
        done = added | {"arguments": call.arguments, "status": "completed"}
        self._output.append(done)
        where = {"item_id": added["id"], "output_index": index}
        return [
            self._event(
                OutputItemEvent, "response.output_item.added", output_index=index, item=added
            ),
            self._event(FunctionArgumentsDeltaEvent, None, delta=call.arguments, **where),
            self._event(
                FunctionArgumentsDoneEvent, None, name=call.name, arguments=call.arguments, **where
            ),
            self._event(
                OutputItemEvent, "response.output_item.done", output_index=index, item=done
            ),
        ]

    def _event(self, kind: type[StreamEvent], event_type: str | None, **fields: Any) -> bytes:
        typed = {"type": event_type} if event_type else {}
        payload = kind(sequence_number=self._seq, **typed, **fields)
        self._seq += 1
        return sse.named_event(str(payload.type), payload)

    def _finish(self, ev: Finished) -> None:
        self.finish_reason = ev.finish_reason
        # The engine's count is the truth: held-back stop-string tokens never streamed.
        self.generated_tokens = ev.completion_tokens
        self.prompt_tokens = ev.prompt_tokens
        self.cached_tokens = ev.cached_tokens

    def _final(
        self, error: str | None = None, open_message: _OpenMessage | None = None
    ) -> Response:
        if open_message is not None:  # a failure mid-message: what came is kept, incomplete
            text = "".join(open_message.text)
            self._output[open_message.index] = _message(open_message.id, text, "incomplete")
        incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}
        reason = incomplete.get(self.finish_reason)
        status = "failed" if error else "incomplete" if reason else "completed"
        return self.shell.model_copy(
            update={
                "status": status,
                "completed_at": int(time.time()) if status == "completed" else None,
                "error": ResponseError(code="server_error", message=error) if error else None,
                "incomplete_details": (
                    IncompleteDetails(reason=reason) if status == "incomplete" else None
                ),
                "output": list(self._output),
                "usage": ResponseUsage(
                    input_tokens=self.prompt_tokens,
                    input_tokens_details=InputTokensDetails(cached_tokens=self.cached_tokens),
                    output_tokens=self.generated_tokens,
                    total_tokens=self.prompt_tokens + self.generated_tokens,
                ),
            }
        )


@dataclass(slots=True)
class _OpenMessage:
    id: str
    index: int
    text: list[str] = field(default_factory=list)
    opening: list[bytes] = field(default_factory=list)
