"""The reference engine: the checkpoint run by `transformers`, one request at a time.

The simplest honest way to serve the bundled model: no batching, no paged cache. It exists
as the baseline the built-in engine is measured and checked against, and it implements the
same `Engine` interface, so the API layer cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from headrace.engine.detokenizer import IncrementalDetokenizer
from headrace.engine.events import EventQueue, relay
from headrace.engine.hf_loading import load
from headrace.engine.interface import (
    EngineStats,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    TextDelta,
    TokenLogprob,
)
from headrace.engine.sampler import SequenceSampler
from headrace.engine.structured import StructuredOutputs
from headrace.engine.tokenizer import Tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

Emit = Callable[[GenerationEvent | BaseException], None]


@dataclass(slots=True)
class _Job:
    request: GenerationRequest
    emit: Emit


class ReferenceEngine:
    """`transformers.AutoModelForCausalLM` behind the `Engine` interface, on its own thread."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: Tokenizer,
        structured: StructuredOutputs,
        *,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        from transformers import AutoModelForCausalLM  # heavy import, only when used

        self._device = torch.device(device)
        self._tokenizer = tokenizer
        self._structured = structured
        model: Any = load(AutoModelForCausalLM, model_dir, dtype=_DTYPES[dtype])
        self._model = model.to(self._device).eval()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._aborted: set[str] = set()
        self._lock = threading.Lock()
        self._running = 0
        self._thread = threading.Thread(target=self._loop, name="reference-engine", daemon=True)
        self._thread.start()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        loop = asyncio.get_running_loop()
        events: EventQueue = asyncio.Queue()

        def emit(event: GenerationEvent | BaseException) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        self._jobs.put(_Job(request, emit))
        async for event in relay(events, lambda: self.abort(request.request_id)):
            yield event

    def abort(self, request_id: str) -> None:
        with self._lock:
            self._aborted.add(request_id)

    def stats(self) -> EngineStats:
        return EngineStats(waiting=self._jobs.qsize(), running=self._running)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while (job := self._jobs.get()) is not None:
            self._running = 1
            try:
                self._run(job)
            except Exception as exc:  # reported to the request's consumer, never lost
                job.emit(exc)
            finally:
                self._running = 0
                with self._lock:
                    self._aborted.discard(job.request.request_id)

    def _is_aborted(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._aborted

    def _run(self, job: _Job) -> None:
        req, params, tok = job.request, job.request.params, self._tokenizer
        prompt = req.prompt_token_ids
        constraint = None if params.grammar is None else self._structured.constraint(params.grammar)
        sampler = SequenceSampler(
            params, eos_token_id=tok.eos_token_id, device=self._device, constraint=constraint
        )
        detok = IncrementalDetokenizer(tok.decode, params.stop)
        stop_ids = set(params.stop_token_ids) | (set() if params.ignore_eos else {tok.eos_token_id})
        input_ids = torch.tensor([prompt], device=self._device)
        out = self._model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        produced = 0
        reason: FinishReason = "length"
        while produced < params.max_tokens:
            if self._is_aborted(req.request_id):
                reason = "abort"
                break
            sample = sampler.sample(out.logits[0, -1], prompt)
            produced += 1
            logprobs: tuple[TokenLogprob, ...] = (sample.logprob,) if sample.logprob else ()
            if sample.token_id in stop_ids:  # not text: never detokenised or reported
                reason = "stop"
                break
            job.emit(TextDelta(detok.push(sample.token_id), (sample.token_id,), logprobs))
            if detok.stopped:
                reason = "stop"
                break
            out = self._model(
                input_ids=torch.tensor([[sample.token_id]], device=self._device),
                cache=out.cache,
                use_cache=True,
            )
        tail = detok.flush()
        if tail:
            job.emit(TextDelta(tail, ()))
        job.emit(Finished(reason, len(prompt), produced))
