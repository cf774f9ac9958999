"""The model builder: tied embeddings, even while transformers loads a model elsewhere."""

from __future__ import annotations

from transformers.initialization import no_tie_weights

from training.model import ModelShape, build_model


def test_a_model_built_while_another_loads_is_tied() -> None:
    shape = ModelShape(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1,
                       num_heads=4, num_kv_heads=2)  # fmt: skip
    with no_tie_weights():  # what a `from_pretrained` in another thread switches on
        model = build_model(shape, seed=0)
    assert model.lm_head.weight is model.model.embed_tokens.weight
