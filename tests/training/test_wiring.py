"""The induction circuit written into the initial weights (training/wiring.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from training import induction, wiring
from training.model import ModelShape, build_config, tie_embeddings

VOCAB = 512  # small, so the test is fast; the circuit does not depend on it


def model(
    *,
    wired: bool,
    theta: float = wiring.ROPE_THETA,
    skip: bool = False,
    pieces: list[str] | None = None,
) -> LlamaForCausalLM:
    config = build_config(ModelShape(vocab_size=VOCAB, num_layers=2, rope_theta=theta))
    config._attn_implementation = "eager"  # attention weights for the probes below
    torch.manual_seed(0)
    built = tie_embeddings(LlamaForCausalLM(config))
    if wired:
        wiring.wire_induction(built, torch.Generator().manual_seed(0), skip=skip, pieces=pieces)
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


SPACE = 3  # the separator in the spaced copy batches below: one id after every other


def spaced_run(built: LlamaForCausalLM, words: int = 16) -> tuple[float, float]:
    """Random words each followed by SPACE, said twice: the loss on the repeated words
    (each predicted at the SPACE before it), and the mean attention of layer 0's query
    head 1 two positions back."""
    generator = torch.Generator().manual_seed(1)
    ids, _ = induction.copy_batch(
        generator, batch=16, low=4, high=VOCAB, min_len=words, max_len=words, separator=SPACE
    )
    labels = torch.full_like(ids, -100)
    labels[:, 2 * words + 2 :: 2] = ids[:, 2 * words + 2 :: 2]  # the words, not the spaces
    with torch.no_grad():
        out = built(input_ids=ids, labels=labels, output_attentions=True)
    second = out.attentions[0][:, 1]
    two_back = torch.stack([second[:, t, t - 2] for t in range(2, ids.shape[1])]).mean()
    return float(out.loss), float(two_back)


def test_the_copy_batches_can_space_their_tokens() -> None:
    ids, labels = induction.copy_batch(
        torch.Generator().manual_seed(0), batch=2, low=4, high=9, min_len=3, max_len=3,
        separator=SPACE,
    )  # fmt: skip
    assert ids.shape == (2, 12)
    assert (ids[:, 1::2] == SPACE).all()
    assert (ids[:, ::2] != SPACE).all()
    assert torch.equal(ids[:, :6], ids[:, 6:])
    assert (labels[:, :7] == -100).all()
    assert torch.equal(labels[:, 7:], ids[:, 7:])


def test_bigram_heads_copy_the_word_after_a_space() -> None:
    """Token-matching heads find every word after a space equally (worse than a uniform
    guess); matching the token before too finds the one word, and plain copies stay."""
    loss, two_back = spaced_run(model(wired=True, skip=True))
    assert two_back > 0.9
    assert loss < 1.5
    assert spaced_run(model(wired=True))[0] > math.log(VOCAB) - 0.5
    assert copy_run(model(wired=True, skip=True))[0] < 1.0


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


def test_letter_codes_spell_every_two_letter_piece() -> None:
    """With `pieces`, a lower-case piece's embedding holds its first letter's code where
    that letter's own token holds it, and its second letter's code in the other half."""
    pieces = [""] * VOCAB
    letters = {c: 10 + i for i, c in enumerate(wiring.ALPHABET)}
    for c, index in letters.items():
        pieces[index] = c
    pairs = {40 + i: a + b for i, (a, b) in enumerate(zip("spellout", "hoandrun", strict=True))}
    for index, piece in pairs.items():
        pieces[index] = piece
    pieces[60] = "Ab"  # not lower-case: no code
    built = model(wired=True, pieces=pieces)
    emb = built.model.embed_tokens.weight.detach()
    block = emb[:, wiring.LETTERS]
    half = block.shape[1] // 2
    alphabet = torch.stack([block[letters[c], :half] for c in wiring.ALPHABET])
    for index, piece in pairs.items():
        for slot in (0, 1):
            scores = alphabet @ block[index, slot * half : (slot + 1) * half]
            assert wiring.ALPHABET[int(scores.argmax())] == piece[slot]
    assert block[60].abs().sum() == 0
    assert block[letters["a"], half:].abs().sum() == 0
    # The circuit still copies with the block reserved.
    assert copy_run(built)[0] < 1.0
