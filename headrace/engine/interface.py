"""The contract between the data plane and any engine: requests in, events out.

async for event in engine.generate(request): ...   # TextDelta..., then one Finished
engine.abort(request_id)                           # frees everything at once
engine.stats()                                     # for the router and metrics
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from headrace.engine.structured import CompiledGrammar

# "content_filter" is never an engine's own: the gateway's output check ends a choice with
# it (safety/output_guard.py).
FinishReason = Literal["stop", "length", "abort", "content_filter"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    min_tokens: int = 0
    ignore_eos: bool = False
    logprobs: int | None = None  # None: none; k >= 0: the sampled token's and the top k
    grammar: CompiledGrammar | None = None  # structured output: a token mask every step


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams
    priority: int = 0  # lower runs first: 0 interactive, 1 batch
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text, safe to show: never a partial UTF-8 character, never a stop string's prefix."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] = ()
    # On a request's first token, from engines that know it: seconds it waited for its
    # first step; the rest of the time to this token was its prefill.
    queue_s: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


GenerationEvent = TextDelta | Finished


class EngineError(RuntimeError):
    """The engine failed a request after accepting it."""


class RequestRejected(ValueError):
    """The engine refuses a request that can never run (before any compute)."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    waiting: int = 0
    running: int = 0
    kv_cache_usage: float = 0.0
    prefix_cache_hit_rate: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Engine(Protocol):
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    def abort(self, request_id: str) -> None: ...

    def stats(self) -> EngineStats: ...

    def close(self) -> None: ...
