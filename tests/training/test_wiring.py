"""The induction circuit written into the initial weights (training/wiring.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from training import induction, wiring
from training.model import ModelShape, build_config

VOCAB = 512  # small, so the test is fast; the circuit does not depend on it


def model(*, wired: bool, theta: float = wiring.ROPE_THETA) -> LlamaForCausalLM:
    config = build_config(ModelShape(vocab_size=VOCAB, num_layers=2, rope_theta=theta))
    config._attn_implementation = "eager"  # attention weights for the probes below
    torch.manual_seed(0)
    built = LlamaForCausalLM(config)
    if wired:
        wiring.wire_induction(built, torch.Generator().manual_seed(0))
    return built.eval()


def copy_run(built: LlamaForCausalLM, length: int = 24) -> tuple[float, float, float]:
    """Loss on the repeat of random sequences said twice, and the mean attention of the
    previous-token head on the previous token and of the induction heads on the position
    after the earlier occurrence."""
    generator = torch.Generator().manual_seed(1)
    ids, labels = induction.copy_batch(
        generator, batch=16, low=3, high=VOCAB, min_len=length, max_len=length
    )
    with torch.no_grad():
        out = built(input_ids=ids, labels=labels, output_attentions=True)
    first, second = out.attentions[0][:, 0], out.attentions[1]
    previous = torch.stack([first[:, t, t - 1] for t in range(1, 2 * length)]).mean()
    found = torch.stack(
        [second[:, h, t, t - length + 1] for h in (0, 4) for t in range(length, 2 * length - 1)]
    ).mean()
    return float(out.loss), float(previous), float(found)


def test_a_wired_model_copies_before_any_training() -> None:
    loss, previous, found = copy_run(model(wired=True))
    assert previous > 0.9
    assert found > 0.9
    assert loss < 1.0  # a uniform guess is ln(512) = 6.2


def test_a_plain_model_does_not() -> None:
    loss, previous, found = copy_run(model(wired=False))
    assert loss > math.log(VOCAB) - 0.5
    assert previous < 0.5
    assert found < 0.5


def test_the_circuit_needs_its_rotary_base() -> None:
    with pytest.raises(ValueError, match="rope_theta"):
        model(wired=True, theta=10000.0)


def test_it_stays_a_plain_llama_checkpoint(tmp_path: Path) -> None:
    built = model(wired=True)
    built.save_pretrained(str(tmp_path))
    loaded = LlamaForCausalLM.from_pretrained(str(tmp_path)).eval()
    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7]])
    with torch.no_grad():
        expected, got = built(input_ids=ids).logits, loaded(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-4)  # eager vs sdpa attention
