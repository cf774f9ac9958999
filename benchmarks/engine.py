"""Offline engine benchmark: throughput and latency of the built-in engine, side by side
with `transformers` `generate()` on the same requests, like `vllm bench throughput`.

    .venv/bin/python -m benchmarks.engine --requests 64 --output-len 64

Reports output tokens/s, TTFT and TPOT/ITL percentiles at concurrency 1 and 32, the
transformers static-batch baseline, the prefix cache's effect on TTFT for a shared
1,000-token prefix, and memory (KV pool, peak RSS, RSS drift over many requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from headrace.config import BUNDLED_MODELS_DIR
from headrace.engine.interface import GenerationRequest, SamplingParams, TextDelta
from headrace.engine.llm_engine import EngineConfig, LLMEngine
from headrace.engine.tokenizer import Tokenizer


@dataclass
class Timing:
    ttft: float
    itls: list[float] = field(default_factory=list)
    tokens: int = 0
    e2e: float = 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_prompts(tok: Tokenizer, n: int, lo: int, hi: int, seed: int) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    words = ["apple", "house", "river", "stone", "cloud", "bread", "chair", "table", "water"]
    prompts = []
    for _ in range(n):
        target = rng.randint(lo, hi)
        body = " ".join(rng.choice(words) for _ in range(target))
        text = f"<|im_start|>user\nRepeat after me: {body}<|im_end|>\n<|im_start|>assistant\n"
        ids = tok.encode(text)
        prompts.append(tuple(ids[-target:] if len(ids) > target else ids))
    return prompts


async def one(engine: LLMEngine, rid: str, prompt: tuple[int, ...], out_len: int) -> Timing:
    params = SamplingParams(max_tokens=out_len, temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    last = start
    timing: Timing | None = None
    async for ev in engine.generate(GenerationRequest(rid, prompt, params)):
        now = time.perf_counter()
        if isinstance(ev, TextDelta) and ev.token_ids:
            if timing is None:
                timing = Timing(ttft=now - start)
            else:
                timing.itls.append(now - last)
            timing.tokens += len(ev.token_ids)
            last = now
    assert timing is not None
    timing.e2e = time.perf_counter() - start
    return timing


async def run_engine(
    engine: LLMEngine,
    prompts: list[tuple[int, ...]],
    out_lens: list[int],
    concurrency: int,
    tag: str,
) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)

    async def limited(i: int, p: tuple[int, ...]) -> Timing:
        async with sem:
            return await one(engine, f"{tag}-{i}", p, out_lens[i])

    start = time.perf_counter()
    timings = await asyncio.gather(*(limited(i, p) for i, p in enumerate(prompts)))
    wall = time.perf_counter() - start
    tokens = sum(t.tokens for t in timings)
    ttfts = [t.ttft * 1000 for t in timings]
    itls = [x * 1000 for t in timings for x in t.itls]
    tpots = [(t.e2e - t.ttft) / max(t.tokens - 1, 1) * 1000 for t in timings]
    return {
        "concurrency": concurrency,
        "requests": len(prompts),
        "output_tokens_per_s": tokens / wall,
        "ttft_ms_p50": pct(ttfts, 50),
        "ttft_ms_p99": pct(ttfts, 99),
        "tpot_ms_p50": pct(tpots, 50),
        "tpot_ms_p99": pct(tpots, 99),
        "itl_ms_p50": pct(itls, 50),
        "itl_ms_p99": pct(itls, 99),
        "wall_s": wall,
    }


def run_transformers(
    model_dir: Path, prompts: list[tuple[int, ...]], out_lens: list[int], batch: int, pad_id: int
) -> dict[str, float]:
    """`generate()` over static batches of `batch` prompts, left-padded, greedy. A static
    batch runs until its longest request is done; only the tokens each request asked for
    count as output (what a client receives), as for the engine."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    start = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            group = prompts[i : i + batch]
            lengths = out_lens[i : i + batch]
            width = max(len(p) for p in group)
            ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in group])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group])
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(lengths),
                min_new_tokens=max(lengths),
                do_sample=False,
                pad_token_id=pad_id,
            )
            assert out.shape[1] - width == max(lengths)
            tokens += sum(lengths)
    wall = time.perf_counter() - start
    return {"batch": batch, "output_tokens_per_s": tokens / wall, "wall_s": wall}


async def prefix_cache(
    engine: LLMEngine, tok: Tokenizer, prefix_len: int, trials: int
) -> dict[str, float]:
    """TTFT of a request whose 1,000-token prefix is cold versus already cached."""
    rng = random.Random(7)
    vocab = list(range(10, tok.vocab_size - 10))
    cold, warm = [], []
    for t in range(trials):
        prefix = tuple(rng.choice(vocab) for _ in range(prefix_len))  # unseen: cold
        q1 = tuple(tok.encode(f"question {t}a"))
        q2 = tuple(tok.encode(f"question {t}b"))
        cold.append((await one(engine, f"cold{t}", prefix + q1, 1)).ttft * 1000)
        warm.append((await one(engine, f"warm{t}", prefix + q2, 1)).ttft * 1000)
    return {
        "prefix_tokens": prefix_len,
        "cold_ttft_ms_p50": statistics.median(cold),
        "warm_ttft_ms_p50": statistics.median(warm),
        "speedup": statistics.median(cold) / statistics.median(warm),
    }


async def rss_drift(engine: LLMEngine, tok: Tokenizer, total: int) -> list[tuple[int, float]]:
    prompts = make_prompts(tok, 64, 8, 24, seed=3)
    samples = [(0, rss_mib())]
    done = 0
    while done < total:
        batch = min(500, total - done)
        await asyncio.gather(
            *(one(engine, f"rss{done + i}", prompts[i % 64], 4) for i in range(batch))
        )
        done += batch
        if done % 2000 == 0 or done == total:
            samples.append((done, rss_mib()))
    return samples


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    model_dir = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
    tok = Tokenizer(model_dir)
    torch.set_num_threads(args.threads)
    engine = LLMEngine(model_dir, tok, EngineConfig(max_num_seqs=64))
    prompts = make_prompts(tok, args.requests, args.prompt_min, args.prompt_max, args.seed)
    rng = random.Random(args.seed + 1)
    out_lens = [rng.randint(args.output_min or args.output_len, args.output_len) for _ in prompts]
    await run_engine(engine, prompts[:4], [8] * 4, 4, "warmup")
    results: dict[str, object] = {
        "model": "headrace-tiny-chat",
        "threads": args.threads,
        "requests": args.requests,
        "prompt_len": [args.prompt_min, args.prompt_max],
        "output_len": [args.output_min or args.output_len, args.output_len],
        "kv_pool_mib": engine.runner.kv_cache_bytes / 2**20,
        "kv_pool_blocks": len(engine.blocks.blocks),
    }
    results["engine_c1"] = await run_engine(
        engine, prompts[: args.solo_requests], out_lens, 1, "c1"
    )
    results["engine_c32"] = await run_engine(engine, prompts, out_lens, 32, "c32")
    results["prefix_cache"] = await prefix_cache(engine, tok, args.prefix_len, 5)
    if args.rss_requests:
        results["rss_mib"] = await rss_drift(engine, tok, args.rss_requests)
    results["peak_rss_mib"] = peak_rss_mib()
    engine.close()
    if not args.skip_transformers:
        results["transformers_b32"] = run_transformers(
            model_dir, prompts, out_lens, 32, tok.eos_token_id
        )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--solo-requests", type=int, default=8, help="requests run at concurrency 1")
    p.add_argument("--prompt-min", type=int, default=32)
    p.add_argument("--prompt-max", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64, help="longest output (tokens)")
    p.add_argument("--output-min", type=int, default=0, help="shortest output (0: fixed)")
    p.add_argument("--prefix-len", type=int, default=1000)
    p.add_argument("--rss-requests", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    results = asyncio.run(main_async(args))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    c1, c32 = results["engine_c1"], results["engine_c32"]
    if not isinstance(c1, dict) or not isinstance(c32, dict):
        return
    rate = c32["output_tokens_per_s"]
    print(f"\nc32 / c1 output tokens/s: {rate / c1['output_tokens_per_s']:.1f}x")
    hf = results.get("transformers_b32")
    if isinstance(hf, dict):
        print(f"engine c32 / transformers b32: {rate / hf['output_tokens_per_s']:.1f}x")


if __name__ == "__main__":
    main()
