"""xgrammar against llguidance on the bundled model's vocabulary: compile time for a JSON
schema and per-token mask time while walking a valid document, the two costs a structured
request pays (compile once, mask every step).

    .venv/bin/python -m benchmarks.grammar
"""

from __future__ import annotations

import json
import statistics
import time

import torch
from transformers import PreTrainedTokenizerFast

from headrace.config import BUNDLED_MODELS_DIR

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city", "zip"],
        },
    },
    "required": ["name", "age", "tags", "address"],
}
DOCUMENT = json.dumps(
    {
        "name": "Ada",
        "age": 36,
        "tags": ["math", "engines"],
        "address": {"city": "London", "zip": "N1"},
    }
)


def ms(seconds: float) -> float:
    return seconds * 1000


def bench_xgrammar(
    hf: PreTrainedTokenizerFast, vocab: int, ids: list[int], eos: int
) -> dict[str, float]:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=vocab, stop_token_ids=[eos])
    compiles = []
    for _ in range(5):
        compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        t = time.perf_counter()
        grammar = compiler.compile_json_schema(json.dumps(SCHEMA))
        compiles.append(time.perf_counter() - t)
    matcher = xgr.GrammarMatcher(grammar)
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    logits = torch.zeros(vocab)
    masks = []
    for token in ids:
        t = time.perf_counter()
        matcher.fill_next_token_bitmask(bitmask, 0)
        xgr.apply_token_bitmask_inplace(logits, bitmask[0])
        masks.append(time.perf_counter() - t)
        assert matcher.accept_token(token), "document rejected"
    return {
        "compile_ms_p50": ms(statistics.median(compiles)),
        "mask_us_p50": ms(statistics.median(masks)) * 1000,
    }


def bench_llguidance(hf: PreTrainedTokenizerFast, vocab: int, ids: list[int]) -> dict[str, float]:
    import llguidance
    import llguidance.hf
    import llguidance.torch as llt

    tokenizer = llguidance.hf.from_tokenizer(hf, n_vocab=vocab)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(SCHEMA))
    compiles = []
    for _ in range(5):
        t = time.perf_counter()
        matcher = llguidance.LLMatcher(tokenizer, grammar)
        compiles.append(time.perf_counter() - t)
    bitmask = llt.allocate_token_bitmask(1, vocab)
    logits = torch.zeros(vocab)
    masks = []
    for token in ids:
        t = time.perf_counter()
        llt.fill_next_token_bitmask(matcher, bitmask, 0)
        llt.apply_token_bitmask_inplace(logits, bitmask[0])
        masks.append(time.perf_counter() - t)
        assert matcher.consume_token(token), matcher.get_error()
    return {
        "compile_ms_p50": ms(statistics.median(compiles)),
        "mask_us_p50": ms(statistics.median(masks)) * 1000,
    }


def main() -> None:
    model_dir = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
    hf = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    eos = hf.convert_tokens_to_ids("<|im_end|>")
    ids = hf.encode(DOCUMENT, add_special_tokens=False)
    results = {
        "document_tokens": len(ids),
        "xgrammar": bench_xgrammar(hf, vocab, ids, eos),
        "llguidance": bench_llguidance(hf, vocab, ids),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
