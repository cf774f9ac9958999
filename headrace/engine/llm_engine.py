"""The built-in engine: continuous batching over a paged KV cache, on its own thread.

    generate() -> inbox -> [engine thread: schedule -> forward -> sample -> emit] -> events

The event loop never runs model code: requests and aborts cross to the engine thread
through a queue, events come back with `call_soon_threadsafe`, one hop per step.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from headrace.engine.block_manager import BlockManager
from headrace.engine.detokenizer import IncrementalDetokenizer
from headrace.engine.events import EventQueue, relay
from headrace.engine.interface import (
    EngineStats,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    RequestRejected,
    TextDelta,
    TokenLogprob,
)
from headrace.engine.model_runner import ModelRunner
from headrace.engine.sampler import SequenceSampler
from headrace.engine.scheduler import Scheduler
from headrace.engine.sequence import Sequence
from headrace.engine.structured import StructuredOutputs
from headrace.engine.tokenizer import Tokenizer
from headrace.observability.logging import get_logger

log = get_logger("headrace.engine")
Deliver = Callable[[GenerationEvent | BaseException], None]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    device: str = "cpu"
    dtype: str = "float32"
    kv_cache_bytes: int = 128 * 1024 * 1024
    block_size: int = 16
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 512


@dataclass(slots=True, eq=False)  # hashed by identity: a key of per-step event maps
class _Active:
    seq: Sequence
    sampler: SequenceSampler
    detok: IncrementalDetokenizer
    stop_ids: frozenset[int]
    loop: asyncio.AbstractEventLoop
    deliver: Deliver
    plain_greedy: bool


class LLMEngine:
    """Implements `engine.interface.Engine` for a Llama-family checkpoint."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: Tokenizer,
        config: EngineConfig,
        structured: StructuredOutputs | None = None,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.runner = ModelRunner(
            model_dir,
            device=config.device,
            dtype=config.dtype,
            kv_cache_bytes=config.kv_cache_bytes,
            block_size=config.block_size,
        )
        self.max_model_len = self.runner.max_model_len
        self.vocab_size = self.runner.model.config.vocab_size
        self.structured = structured or StructuredOutputs(
            model_dir, self.vocab_size, [tokenizer.eos_token_id]
        )
        self.blocks = BlockManager(self.runner.num_blocks, config.block_size)
        self.scheduler = Scheduler(
            self.blocks,
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens,
        )
        self._active: dict[str, _Active] = {}
        self._inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="llm-engine", daemon=True)
        self._thread.start()

    # --- the interface ---------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self._check(request)
        events: EventQueue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._inbox.put(("add", self._activate(request, loop, events.put_nowait)))
        async for event in relay(events, lambda: self.abort(request.request_id)):
            yield event

    def abort(self, request_id: str) -> None:
        self._inbox.put(("abort", request_id))

    def stats(self) -> EngineStats:
        return EngineStats(
            waiting=len(self.scheduler.waiting),
            running=len(self.scheduler.running),
            kv_cache_usage=self.blocks.usage,
            prefix_cache_hit_rate=self.blocks.hit_rate,
            extra={
                "preemptions": float(self.scheduler.num_preemptions),
                "kv_cache_blocks": float(len(self.blocks.blocks)),
                "kv_cache_bytes": float(self.runner.kv_cache_bytes),
            },
        )

    def close(self) -> None:
        self._inbox.put(("stop", None))
        self._thread.join(timeout=10)

    # --- admission (caller's thread) -------------------------------------------------------

    def _check(self, request: GenerationRequest) -> None:
        """Refuse what can never run, before any compute."""
        prompt, params = request.prompt_token_ids, request.params
        if not prompt:
            raise RequestRejected("the prompt is empty")
        if len(prompt) + params.max_tokens > self.max_model_len:
            raise RequestRejected(
                f"prompt ({len(prompt)}) + max_tokens ({params.max_tokens}) exceeds the "
                f"context window ({self.max_model_len})"
            )
        if min(prompt) < 0 or max(prompt) >= self.vocab_size:
            raise RequestRejected("prompt has token ids outside the vocabulary")
        if any(not 0 <= t < self.vocab_size for t, _ in params.logit_bias):
            raise RequestRejected("logit_bias names token ids outside the vocabulary")

    def _activate(
        self, request: GenerationRequest, loop: asyncio.AbstractEventLoop, deliver: Deliver
    ) -> _Active:
        p = request.params
        seq = Sequence(
            request.request_id,
            list(request.prompt_token_ids),
            p,
            priority=request.priority,
            tenant=request.tenant,
        )
        eos = self.tokenizer.eos_token_id
        plain = (
            p.temperature == 0
            and not p.logit_bias
            and p.logprobs is None
            and not (p.presence_penalty or p.frequency_penalty)
            and p.repetition_penalty == 1.0
            and p.min_tokens == 0
            and p.grammar is None
        )
        constraint = None if p.grammar is None else self.structured.constraint(p.grammar)
        return _Active(
            seq=seq,
            sampler=SequenceSampler(
                p, eos_token_id=eos, device=self.runner.device, constraint=constraint
            ),
            detok=IncrementalDetokenizer(self.tokenizer.decode, p.stop),
            stop_ids=frozenset(p.stop_token_ids) | (frozenset() if p.ignore_eos else {eos}),
            loop=loop,
            deliver=deliver,
            plain_greedy=plain,
        )

    # --- the engine thread ------------------------------------------------------------------

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            # Block only when idle; otherwise take what arrived and keep stepping.
            block = not self.scheduler.has_work()
            while True:
                try:
                    kind, payload = self._inbox.get(block=block)
                except queue.Empty:
                    break
                block = False
                if kind == "stop":
                    return
                if kind == "add":
                    assert isinstance(payload, _Active)
                    self._add(payload)
                elif kind == "abort":
                    assert isinstance(payload, str)
                    self._abort(payload)
            if self.scheduler.has_work():
                try:
                    self._step()
                except Exception as exc:  # a bug must fail requests, not hang them forever
                    log.exception("engine_step_failed")
                    self._fail([a.seq for a in list(self._active.values())], exc)

    def _add(self, active: _Active) -> None:
        try:
            self.scheduler.add(active.seq)
        except ValueError as exc:
            active.loop.call_soon_threadsafe(active.deliver, exc)
            return
        self._active[active.seq.request_id] = active

    def _abort(self, request_id: str) -> None:
        active = self._active.pop(request_id, None)
        if active is not None:
            self.scheduler.finish(active.seq)
            self._send({active: [self._finished(active, "abort")]})

    def step(self) -> int:
        """One scheduling step; returns the tokens computed (for tests and benchmarks)."""
        return self._step()

    def _step(self) -> int:
        out = self.scheduler.schedule()
        if out.empty:
            return 0
        now = time.perf_counter()
        for seq, _ in out.prefills:
            if seq.scheduled_s is None:
                seq.scheduled_s = now
        try:
            sampling, logits = self.runner.run(out.decodes, out.prefills)
        except Exception as exc:  # a failed forward fails its requests, not the engine
            self._fail([*out.decodes, *(s for s, _ in out.prefills)], exc)
            return 0
        for seq in out.decodes:
            seq.num_computed += 1
            self.blocks.mark_computed(seq)
        for seq, n in out.prefills:
            seq.num_computed += n
            self.blocks.mark_computed(seq)
        self._send(self._sample(sampling, logits))
        return out.num_tokens

    def _sample(
        self, seqs: list[Sequence], logits: torch.Tensor
    ) -> dict[_Active, list[GenerationEvent]]:
        events: dict[_Active, list[GenerationEvent]] = defaultdict(list)
        actives = [self._active[s.request_id] for s in seqs]
        plain = any(a.plain_greedy for a in actives)
        greedy = torch.argmax(logits, dim=-1).tolist() if plain else []
        for row, active in enumerate(actives):
            seq = active.seq
            if active.plain_greedy:
                self._advance(active, greedy[row], None, events[active])
                continue
            try:
                prompt = tuple(seq.token_ids[: seq.num_prompt_tokens])
                sample = active.sampler.sample(logits[row], prompt)
            except Exception as exc:  # e.g. a grammar with no way forward: fail this one
                events.pop(active, None)
                self._fail([seq], exc)
                continue
            self._advance(active, sample.token_id, sample.logprob, events[active])
        return events

    def _advance(
        self,
        active: _Active,
        token: int,
        logprob: TokenLogprob | None,
        events: list[GenerationEvent],
    ) -> None:
        """Append a sampled token; emit its text; finish the sequence if it is done."""
        seq = active.seq
        seq.token_ids.append(token)
        reason: FinishReason | None = "stop" if token in active.stop_ids else None
        if reason is None:  # stop tokens are not text: never detokenised or reported
            # Every token is reported, even while its text is held back (a partial UTF-8
            # character, a possible stop string): consumers count and time tokens.
            text = active.detok.push(token)
            queue_s = None
            if seq.num_output_tokens == 1 and seq.scheduled_s is not None:
                queue_s = seq.scheduled_s - seq.submitted_s
            logprobs = () if logprob is None else (logprob,)
            events.append(TextDelta(text, (token,), logprobs, queue_s))
            if active.detok.stopped:
                reason = "stop"
            elif seq.num_output_tokens >= seq.params.max_tokens or len(seq) >= self.max_model_len:
                reason = "length"
        if reason is not None:
            tail = active.detok.flush()
            if tail:
                events.append(TextDelta(tail, ()))
            events.append(self._finished(active, reason))
            self.scheduler.finish(seq)
            del self._active[seq.request_id]

    def _finished(self, active: _Active, reason: FinishReason) -> Finished:
        seq = active.seq
        produced = seq.num_output_tokens
        return Finished(reason, seq.num_prompt_tokens, produced, seq.num_cached)

    def _fail(self, seqs: list[Sequence], exc: Exception) -> None:
        for seq in seqs:
            active = self._active.pop(seq.request_id, None)
            if active is not None:
                self.scheduler.finish(seq)
                active.loop.call_soon_threadsafe(active.deliver, exc)

    def _send(self, events: dict[_Active, list[GenerationEvent]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Deliver, GenerationEvent]]] = (
            defaultdict(list)
        )
        for active, evs in events.items():
            by_loop[active.loop].extend((active.deliver, ev) for ev in evs)
        for loop, batch in by_loop.items():
            loop.call_soon_threadsafe(_deliver_all, batch)


def _deliver_all(batch: list[tuple[Deliver, GenerationEvent]]) -> None:
    for deliver, event in batch:
        deliver(event)
