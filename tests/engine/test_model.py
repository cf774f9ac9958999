"""Our Llama implementation against `transformers`' on the bundled checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from headrace.config import BUNDLED_MODELS_DIR
from headrace.engine.interface import SamplingParams
from headrace.engine.model import ModelConfig, rope_inv_freq
from headrace.engine.model_runner import ModelRunner
from headrace.engine.sequence import Sequence

MODEL_DIR = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
PROMPTS = [
    [5, 17, 300, 41, 8, 99, 1000, 12, 7, 7, 7, 256, 3],
    [900, 14, 15, 16, 2000, 3, 44],
    list(range(100, 140)),
]


@pytest.fixture(scope="module")
def hf_model() -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return ModelRunner(MODEL_DIR, kv_cache_bytes=8 * 1024 * 1024, block_size=4)


def _hf_logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float()


def _allocate(runner: ModelRunner, seqs: list[Sequence], next_block: list[int]) -> None:
    for s in seqs:
        need = -(-(len(s) + 8) // runner.block_size) - len(s.block_table)
        s.block_table.extend(range(next_block[0], next_block[0] + need))
        next_block[0] += need


def test_prefill_logits_match_transformers(hf_model: torch.nn.Module, runner: ModelRunner) -> None:
    seqs = [Sequence(f"p{i}", p, SamplingParams(max_tokens=1)) for i, p in enumerate(PROMPTS)]
    _allocate(runner, seqs, [0])
    sampling, logits = runner.run([], [(s, len(s)) for s in seqs])  # one batch, three prompts
    assert sampling == seqs
    for i, prompt in enumerate(PROMPTS):
        expected = _hf_logits(hf_model, prompt)[-1]
        torch.testing.assert_close(logits[i], expected, atol=2e-4, rtol=1e-4)


def test_chunked_prefill_and_decode_match_transformers(
    hf_model: torch.nn.Module, runner: ModelRunner
) -> None:
    prompt = PROMPTS[2]
    s = Sequence("c", prompt, SamplingParams(max_tokens=4))
    _allocate(runner, [s], [200])
    # Three chunks, then three decode steps with tokens of our choosing.
    for n in (15, 15, 10):
        _sampling, logits = runner.run([], [(s, n)])
        s.num_computed += n
    expected = _hf_logits(hf_model, prompt)
    torch.testing.assert_close(logits[0], expected[-1], atol=2e-4, rtol=1e-4)
    for token in (11, 22, 33):
        s.token_ids.append(token)
        _, logits = runner.run([s], [])
        s.num_computed += 1
        torch.testing.assert_close(
            logits[0], _hf_logits(hf_model, s.token_ids)[-1], atol=2e-4, rtol=1e-4
        )


def test_config_reads_every_supported_layout(tmp_path: Path) -> None:
    config = ModelConfig.from_dir(MODEL_DIR)
    assert config.num_kv_heads < config.num_heads  # GQA
    assert config.tie_word_embeddings
    import json

    raw = json.loads((MODEL_DIR / "config.json").read_text())
    raw.update(
        architectures=["Qwen2ForCausalLM"],
        rope_parameters={
            "rope_theta": 1e6,
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 512,
        },
    )
    raw.pop("attention_bias")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    qwen = ModelConfig.from_dir(tmp_path)
    assert qwen.qkv_bias  # Qwen2 has q/k/v biases
    assert qwen.rope_theta == 1e6
    scaled = rope_inv_freq(qwen)
    plain = 1.0 / (1e6 ** (torch.arange(0, qwen.head_dim, 2, dtype=torch.float64) / qwen.head_dim))
    assert scaled[0] == plain[0]  # high frequencies are kept
    assert scaled[-1] == pytest.approx(plain[-1] / 8)  # low frequencies are stretched
    raw["architectures"] = ["GPT2LMHeadModel"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="unsupported architecture"):
        ModelConfig.from_dir(tmp_path)


def test_bfloat16_on_cpu_tracks_float32(runner: ModelRunner) -> None:
    half = ModelRunner(MODEL_DIR, dtype="bfloat16", kv_cache_bytes=8 * 1024 * 1024, block_size=4)
    assert half.kv_cache.dtype == torch.bfloat16
    prompt = PROMPTS[0]
    full_seq = Sequence("f32", prompt, SamplingParams(max_tokens=1))
    half_seq = Sequence("bf16", prompt, SamplingParams(max_tokens=1))
    _allocate(runner, [full_seq], [400])
    _allocate(half, [half_seq], [0])
    _, full = runner.run([], [(full_seq, len(prompt))])
    _, low = half.run([], [(half_seq, len(prompt))])
    assert low.dtype == torch.float32  # logits are always returned in float32
    assert torch.argmax(low) == torch.argmax(full)
    # Up to a shift shared by every token (which the softmax ignores: the model's embeddings
    # share one large constant dimension, whose rounding moves all logits alike).
    shift = (low - full).mean()
    assert (low - full - shift).abs().max() < 0.5
