"""The built-in engine end to end on the bundled model: batching never changes an output,
seeds reproduce, aborts and preemption free their blocks, the prefix cache is exact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import torch

from headrace.config import BUNDLED_MODELS_DIR
from headrace.engine.interface import (
    Finished,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from headrace.engine.llm_engine import EngineConfig, LLMEngine
from headrace.engine.tokenizer import Tokenizer

MODEL_DIR = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
TOKENIZER = Tokenizer(MODEL_DIR)
QUESTIONS = [
    "What is 2 + 3?",
    "What is the capital of France?",
    "Count from 1 to 5.",
    "Reverse the word apple.",
    "Hello!",
    "What is 7 times 6?",
    "Spell the word house.",
    "What day comes after Monday?",
]


def prompt(question: str, system: str = "") -> tuple[int, ...]:
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    text = f"{head}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return tuple(TOKENIZER.encode(text))


@pytest.fixture(scope="module")
def engine() -> Iterator[LLMEngine]:
    eng = LLMEngine(MODEL_DIR, TOKENIZER, EngineConfig(max_num_seqs=64))
    yield eng
    eng.close()


async def run(
    engine: LLMEngine, rid: str, ids: tuple[int, ...], **params: object
) -> tuple[list[int], str, Finished]:
    defaults: dict[str, object] = {"max_tokens": 24, "temperature": 0.0}
    request = GenerationRequest(rid, ids, SamplingParams(**(defaults | params)))  # type: ignore[arg-type]
    tokens: list[int] = []
    text = []
    finished = None
    async for ev in engine.generate(request):
        if isinstance(ev, TextDelta):
            tokens.extend(ev.token_ids)
            text.append(ev.text)
        else:
            finished = ev
    assert finished is not None
    return tokens, "".join(text), finished


async def test_greedy_matches_transformers(engine: LLMEngine) -> None:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    for i, question in enumerate(QUESTIONS[:4]):
        ids = prompt(question)
        ours, _, finished = await run(engine, f"hf{i}", ids, max_tokens=20)
        with torch.inference_mode():
            out = hf.generate(
                torch.tensor([ids]),
                max_new_tokens=20,
                do_sample=False,
                eos_token_id=TOKENIZER.eos_token_id,
                pad_token_id=TOKENIZER.eos_token_id,
            )
        theirs = out[0, len(ids) :].tolist()
        if finished.finish_reason == "stop":  # the stop token ends ours without being text
            assert theirs[-1] == TOKENIZER.eos_token_id
            theirs = theirs[:-1]
        assert ours == theirs


@pytest.mark.parametrize("params", [{"temperature": 0.0}, {"temperature": 1.0, "seed": 1234}])
async def test_output_is_the_same_alone_or_in_a_batch_of_32(
    engine: LLMEngine, params: dict[str, object]
) -> None:
    prompts = [prompt(QUESTIONS[i % len(QUESTIONS)], system="s" * (i % 5)) for i in range(32)]
    alone = [(await run(engine, f"a{i}", p, **params))[0] for i, p in enumerate(prompts[:8])]
    together = await asyncio.gather(
        *(run(engine, f"b{i}", p, **params) for i, p in enumerate(prompts))
    )
    assert [t[0] for t in together[:8]] == alone


async def test_abort_frees_everything(engine: LLMEngine) -> None:
    request = GenerationRequest(
        "abort-me", prompt(QUESTIONS[2]), SamplingParams(max_tokens=500, ignore_eos=True)
    )
    stream = engine.generate(request)
    seen = 0
    async for ev in stream:
        assert isinstance(ev, TextDelta)
        seen += 1
        if seen == 3:
            break
    await stream.aclose()  # what a client disconnect does
    # The abort is processed at the next step; a tiny request after it drains the queue.
    await run(engine, "after-abort", prompt(QUESTIONS[0]), max_tokens=2)
    stats = engine.stats()
    assert stats.running == 0
    assert stats.waiting == 0
    assert engine.blocks.num_free == len(engine.blocks.blocks)


async def test_prefix_cache_hits_and_changes_nothing(engine: LLMEngine) -> None:
    system = "You are a careful assistant. " * 12
    first = await run(engine, "p1", prompt(QUESTIONS[0], system))
    second = await run(engine, "p2", prompt(QUESTIONS[0], system))
    assert first[2].cached_tokens == 0 or first[2].cached_tokens < second[2].cached_tokens
    assert second[2].cached_tokens >= 64
    assert second[0] == first[0]
    other = await run(engine, "p3", prompt(QUESTIONS[1], system))
    assert other[2].cached_tokens >= 64  # the shared system prompt is reused
    assert engine.stats().prefix_cache_hit_rate > 0


async def test_stop_strings_and_lengths(engine: LLMEngine) -> None:
    tokens, _text, finished = await run(
        engine, "len", prompt(QUESTIONS[2]), max_tokens=5, ignore_eos=True
    )
    assert finished.finish_reason == "length"
    assert finished.completion_tokens == 5 == len(tokens)
    full = (await run(engine, "full", prompt(QUESTIONS[2]), max_tokens=30, ignore_eos=True))[1]
    stop = full[10:12]
    _, cut, finished = await run(
        engine, "stop", prompt(QUESTIONS[2]), max_tokens=30, ignore_eos=True, stop=(stop,)
    )
    assert cut == full[: full.index(stop)]
    assert finished.finish_reason == "stop"


async def test_requests_that_cannot_fit_are_refused_before_compute(engine: LLMEngine) -> None:
    with pytest.raises(ValueError, match="context window"):
        await run(engine, "big", prompt("x"), max_tokens=5000)
    with pytest.raises(ValueError, match="vocabulary"):
        await run(engine, "bad", (10**7,), max_tokens=1)


async def test_preemption_by_recompute_changes_no_output() -> None:
    # The smallest pool the engine allows: one full-length sequence (129 blocks of 16).
    small = LLMEngine(MODEL_DIR, TOKENIZER, EngineConfig(kv_cache_bytes=1, max_num_seqs=32))
    try:
        prompts = [prompt(QUESTIONS[i % len(QUESTIONS)], "x" * i) for i in range(16)]
        params = {"max_tokens": 120, "ignore_eos": True}
        together = await asyncio.gather(
            *(run(small, f"q{i}", p, **params) for i, p in enumerate(prompts))
        )
        assert small.scheduler.num_preemptions > 0
        alone = [await run(small, f"solo{i}", p, **params) for i, p in enumerate(prompts[:3])]
        assert [t[0] for t in together[:3]] == [a[0] for a in alone]
        assert all(t[2].completion_tokens == 120 for t in together)
        assert small.blocks.num_free == len(small.blocks.blocks)
    finally:
        small.close()


async def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(
    engine: LLMEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headrace.engine.interface import EngineError

    real_run = engine.runner.run
    calls = {"n": 0}

    def flaky_run(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated device failure")
        return real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.runner, "run", flaky_run)
    with pytest.raises(EngineError, match="simulated"):
        await run(engine, "doomed", prompt(QUESTIONS[0]))
    tokens, _, finished = await run(engine, "fine", prompt(QUESTIONS[0]), max_tokens=4)
    assert finished.completion_tokens == len(tokens) > 0
    assert engine.blocks.num_free == len(engine.blocks.blocks)


async def test_reference_engine_gives_the_same_greedy_output(engine: LLMEngine) -> None:
    from headrace.engine.reference import ReferenceEngine

    reference = ReferenceEngine(MODEL_DIR, TOKENIZER, engine.structured)
    try:
        ids = prompt(QUESTIONS[3])
        ours = await run(engine, "ours", ids, max_tokens=16)
        theirs = await run(reference, "ref", ids, max_tokens=16)  # type: ignore[arg-type]
        assert theirs[0] == ours[0]
        assert theirs[1] == ours[1]
        assert theirs[2].finish_reason == ours[2].finish_reason
    finally:
        reference.close()


async def test_the_first_token_reports_the_wait_before_the_first_step(engine: LLMEngine) -> None:
    """Queue time apart from prefill: only a request's first token says how long it waited."""
    request = GenerationRequest(
        "queued", prompt("Count to five."), SamplingParams(max_tokens=6, temperature=0.0)
    )
    t0 = time.perf_counter()
    waits = []
    first_token_s = None
    async for ev in engine.generate(request):
        if isinstance(ev, TextDelta) and ev.token_ids:
            first_token_s = first_token_s or time.perf_counter() - t0
            waits.append(ev.queue_s)
    assert first_token_s is not None
    assert waits[0] is not None
    assert 0 <= waits[0] <= first_token_s
    assert waits[1:] == [None] * (len(waits) - 1)
