"""The training loss: the labelled positions' cross-entropy, as transformers computes it."""

from __future__ import annotations

import torch

from training.data import IGNORE_INDEX
from training.model import ModelShape, build_model
from training.train import assistant_loss


def test_the_loss_on_labelled_positions_is_the_models_own() -> None:
    shape = ModelShape(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2,
                       num_heads=4, num_kv_heads=2)  # fmt: skip
    model = build_model(shape, seed=0)
    ids = torch.randint(3, 128, (3, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :10] = IGNORE_INDEX  # the prompt
    labels[1, 20:] = IGNORE_INDEX  # padding after a shorter row
    expected = model(input_ids=ids, labels=labels).loss
    assert torch.allclose(assistant_loss(model, ids, labels), expected, atol=1e-6)
    half = assistant_loss(model, ids, labels, bf16=True)
    assert abs(half.item() - expected.item()) < 0.05 * expected.item()  # bfloat16's rounding
    half.backward()  # gradients reach the float32 weights
    assert model.model.embed_tokens.weight.grad is not None
