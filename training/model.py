"""The headrace-tiny-chat architecture and atomic Hugging Face checkpoint export."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

BOS_ID, IM_START_ID, EOS_ID, PAD_ID = 0, 1, 2, 0  # ids fixed by training/tokenizer.py


@dataclass(frozen=True)
class ModelShape:
    """Size knobs of the Llama model (defaults: the shipped model)."""

    vocab_size: int = 3072
    hidden_size: int = 256
    intermediate_size: int = 688  # about 8/3 * hidden, as usual for SwiGLU
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 2  # grouped-query attention: 4 query heads share a KV head
    max_position_embeddings: int = 2048  # serving context window
    rope_theta: float = 10000.0


def build_config(shape: ModelShape) -> LlamaConfig:
    """A ``LlamaConfig`` (RMSNorm, RoPE, SwiGLU, GQA) with tied embeddings."""
    return LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=True,
        initializer_range=0.02,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        dtype="float32",
    )


def build_model(shape: ModelShape, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model; ``seed`` makes the initial weights reproducible."""
    torch.manual_seed(seed)
    return tie_embeddings(LlamaForCausalLM(build_config(shape)))


def tie_embeddings(model: LlamaForCausalLM) -> LlamaForCausalLM:
    """`model` with its output layer the input embedding, as `tie_word_embeddings` asks.
    transformers ties them when it builds the model, unless tying is switched off at that
    moment: a `from_pretrained` in another thread switches it off for every model while it
    loads, and two interleaved loads could leave it off for good (the test suite's wiring
    tests failed so; headrace/engine/hf_loading.py now keeps the gateway's loads apart)."""
    model.lm_head.weight = model.model.embed_tokens.weight
    return model


def generation_config() -> GenerationConfig:
    """Greedy decoding that stops at ``<|im_end|>``."""
    return GenerationConfig(
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        do_sample=False,
        max_new_tokens=256,
    )


def write_tied_head(weights: Path) -> None:
    """Store ``lm_head.weight`` in the file beside the embedding it is tied to.

    ``save_pretrained`` leaves a tied head out and counts on the loader to tie it back.
    A project CI run once loaded this checkpoint with the head left uninitialised
    (``lm_head.weight | MISSING``) where the same transformers release tied it here; with
    the head written out, any loader gets the right weights, tying or not (3 MB).
    """
    tensors = load_file(str(weights))
    if "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
        save_file(tensors, str(weights), metadata={"format": "pt"})


def save_checkpoint(model: LlamaForCausalLM, tokenizer_dir: Path, out_dir: Path) -> None:
    """Write model + tokenizer files into ``out_dir`` without readers seeing partial files.

    Everything is written to a temporary directory next to ``out_dir`` and each
    file is then moved into place with ``os.replace`` (atomic on one filesystem).
    Files in ``out_dir`` that are not produced here (e.g. the model card) stay.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        model.generation_config = generation_config()
        model.save_pretrained(str(tmp), safe_serialization=True)
        write_tied_head(tmp / "model.safetensors")
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            shutil.copyfile(tokenizer_dir / name, tmp / name)
        for path in sorted(tmp.iterdir()):
            path.chmod(0o644)  # mkdtemp-style private modes would hide files from the server
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
