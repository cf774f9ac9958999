"""An induction circuit written into the initial weights.

Copying from the context (a word to spell, a phrase to repeat, a name, a tool argument)
needs an induction head: a circuit that finds the earlier occurrence of the current token
and predicts what followed it. Left to gradient descent it formed in some runs and not in
others (docs/models.md, runs 5 to 8): before it exists nothing rewards its parts. So the
run starts with one already in place, built from two attention heads, and training takes
it from there like any other weights:

- layer 0, query head 0 (KV head 0), the *previous-token head*: its query and key read a
  constant direction of the embedding (dimension 0, the same for every token) through the
  fastest rotary pairs, phased so that the score peaks one position back; its value is a
  random projection of the token's identity, written into a reserved block of the residual
  stream (`PREV`, 32 dimensions): after layer 0 every position also carries the token
  before it.
- layer 1, query heads 0 and 4 (one per KV head), the *induction heads*: the query is the
  current token's projection, the key the `PREV` block, both through the slowest rotary
  pairs (nearly position-free), so a position scores high where the token before it is
  the current token; the value is a random projection of that position's own token,
  written back into the token dimensions, where the tied output embedding turns it into
  a logit for that token.

With `skip`, the induction heads match bigrams, which sees past the separator between
words. The pre-tokenizer never glues a space to a word, so in `my dog is called Quinn`
the token before `Quinn` is a space, as it is before every word: at the space after `Your
dog is called` a token-matching head finds every word of the conversation equally, and
the first token of a copied name came out as the commonest one (`Your dog is called M.`).

- layer 0, query head 1 (sharing KV head 0, so the same key and value), the *second
  previous-token head*: the same rotary phasing one position further back; it writes the
  token two back into a second reserved block (`PREV2`).
- layer 1, the induction heads compare on half their slow pairs the current token with a
  position's `PREV` (as before) and on the other half the token before the current one
  (`PREV`) with the position's `PREV2`: a position scores twice where both match, so the
  word after an earlier `called` + space wins over every other word after a space.
  Measured before any step (3-layer probe, random words each followed by one separator
  token, said twice): loss on the repeated words 6.8 nats without `skip` (a uniform guess:
  6.2), 0.64 with it; on plain repeated sequences 0.51 -> 0.40. Summing both comparisons on
  all slow pairs instead (no split) gave 1.9 and 0.72: the cross terms cost more than the
  extra dimensions give.

With `pieces` (the text of every token id), letter codes: a reserved block of the
embedding (`LETTERS`) holds a random code of a lower-case piece's first letter and, in its
other half, of its second; a single letter's token holds its own code where a piece holds
its first letter's. Reading a piece's letters is then one linear map for every piece. Not
in the shipped run: run 13 with them spelled no better than run 12 without (45 % against
58 %, one run each; docs/models.md).

Everything else keeps the usual random initialisation. The model stays a plain
`LlamaForCausalLM`; only the starting point differs (`--wire-induction` in train.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import LlamaForCausalLM

CONST = 0  # embedding dimension that is the same for every token
PREV = slice(128, 160)  # residual block the previous-token head writes
PREV2 = slice(160, 192)  # residual block the second previous-token head writes (`skip`)
LETTERS = slice(224, 256)  # `pieces`: a lower-case piece's first letter, then its second
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# Rotary pairs (index i pairs dims i and i + 16 of a 32-dim head): the fast ones locate the
# previous position, the slow ones (angle < 0.5 rad over 500 positions at theta 1e6) carry
# token identity almost unrotated.
FAST_PAIRS = {0: 0.4, 1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1, 5: 0.2}
SLOW_PAIRS = tuple(range(8, 16))
ROPE_THETA = 1e6


def _token_dims(hidden: int, reserved: list[slice]) -> list[int]:
    return [d for d in range(1, hidden) if not any(r.start <= d < r.stop for r in reserved)]


def wire_induction(
    model: LlamaForCausalLM,
    generator: torch.Generator,
    *,
    locate: float = 20.0,
    match: float = 300.0,
    copy_gain: float = 30.0,
    out_gain: float = 0.1,
    emb_std: float = 1.0,
    skip: bool = False,
    pieces: Sequence[str] | None = None,
) -> None:
    """Write the circuit into `model`, freshly initialised: at least 2 layers, head dim 32,
    2 KV heads, `rope_theta` = ROPE_THETA.

    `locate` is the previous-token head's peak attention score, `match` the induction
    heads' query/key gain, `copy_gain` the strength of what they write, `out_gain` the final
    norm's weight (the scale of the logits), `emb_std` the embedding's scale, `pieces` the
    text of every token id (letter codes, :func:`_letter_codes`). The defaults
    give a copy loss of about 0.5 nats on random sequences said twice, before any step
    (8.0 for a plain initialisation), and chat training keeps the circuit (docs/models.md).
    """
    cfg = model.config
    hidden, head = cfg.hidden_size, cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"]
    if (head, cfg.num_key_value_heads, theta) != (32, 2, ROPE_THETA) or cfg.num_hidden_layers < 2:
        raise ValueError("the circuit needs head dim 32, 2 KV heads, 2+ layers, rope_theta 1e6")
    reserved = [PREV, PREV2] if skip else [PREV]
    if pieces is not None:
        reserved.append(LETTERS)
    tok = torch.tensor(_token_dims(hidden, reserved))
    # A token dimension after layer 0's RMSNorm: the token dims hold half the energy.
    normed_token_rms = math.sqrt(hidden / (2 * len(tok)))

    def projection() -> torch.Tensor:  # token dims -> one head, random, norm-preserving
        return torch.randn(head, len(tok), generator=generator) / math.sqrt(len(tok))

    with torch.no_grad():
        # Every residual branch starts at zero (a block is the identity until it learns):
        # otherwise random branch outputs bury what the circuit writes within a few steps.
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        # The embedding: token identity at scale `emb_std` (large beside what the branches
        # write early on: at 0.02 the circuit was gone within 16 steps), the constant in
        # CONST (half the energy), nothing in PREV.
        emb = model.model.embed_tokens.weight
        emb.mul_(emb_std / float(emb[:, tok].std()))
        for block in reserved:
            emb[:, block] = 0.0
        emb[:, CONST] = emb_std * math.sqrt(len(tok))
        if pieces is not None:
            _letter_codes(emb, pieces, generator, emb_std)
        identity = projection()
        first = model.model.layers[0].self_attn
        write = emb_std / normed_token_rms  # PREV at about the token dimensions' scale
        _previous_token_head(first, tok, identity, locate, write, query_head=0, into=PREV)
        terms: list[tuple[torch.Tensor | slice, slice, tuple[int, ...]]] = [
            (identity, PREV, SLOW_PAIRS)
        ]
        if skip:  # half the slow pairs compare the tokens before: bigrams, not tokens
            _previous_token_head(first, tok, identity, locate, write, query_head=1, into=PREV2)
            terms = [(identity, PREV, SLOW_PAIRS[:4]), (PREV, PREV2, SLOW_PAIRS[4:])]
        _induction_heads(
            model.model.layers[1].self_attn, tok, [projection(), projection()],
            match, copy_gain * emb_std, terms,
        )  # fmt: skip
        model.model.norm.weight.fill_(out_gain)


def _letter_codes(
    emb: torch.Tensor, pieces: Sequence[str], generator: torch.Generator, scale: float
) -> None:
    """The letters of every lower-case token of one or two letters, in LETTERS: a random
    code of its first letter in the block's first half, of its second in the second. A
    single letter carries its own code where a piece carries its first letter's, so
    spelling a piece's first letter is copying half a block into the output, and its second
    one fixed linear map away, the same for every piece: pieces rarely seen spelled are
    spelled like the others (the tokenizer cuts every word that is not a template word
    into such pieces, training/tokenizer.py)."""
    half = (LETTERS.stop - LETTERS.start) // 2
    codes = torch.randn(len(ALPHABET), half, generator=generator) * scale
    for index, piece in enumerate(pieces):
        if 1 <= len(piece) <= 2 and all(c in ALPHABET for c in piece):
            for slot, letter in enumerate(piece):
                start = LETTERS.start + slot * half
                emb[index, start : start + half] = codes[ALPHABET.index(letter)]


def _previous_token_head(
    attn: torch.nn.Module,
    tok: torch.Tensor,
    identity: torch.Tensor,
    locate: float,
    scale: float,
    *,
    query_head: int,
    into: slice,
) -> None:
    """Query head `query_head` (0 or 1) on KV head 0: attend `query_head + 1` positions
    back, write that token's projection `identity` into the block `into`, times `scale`.
    Both share KV head 0: its key and value are written the same way by either."""
    head, half = identity.shape[0], identity.shape[0] // 2
    hidden = attn.q_proj.weight.shape[1]
    inv_freq = ROPE_THETA ** (-torch.arange(half, dtype=torch.float64) / half)
    q, k, v, o = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
                  attn.o_proj.weight)  # fmt: skip
    qh = slice(query_head * head, (query_head + 1) * head)
    q[qh] = 0.0
    k[:head] = 0.0
    v[:head] = 0.0
    # CONST after RMSNorm is about sqrt(hidden / 2). As complex numbers per rotary pair, the
    # key is a e^{if} (one step's angle ahead) and the query a e^{-i n f}: the score at
    # distance d is a^2 * CONST^2 / sqrt(head) * cos((d - 1 - n) f) summed over the pairs,
    # `locate` at d = 1 + n, less at every other distance.
    for pair, weight in FAST_PAIRS.items():
        a = math.sqrt(locate * weight * math.sqrt(head) / (hidden / 2))
        angle = float(inv_freq[pair])
        q[qh.start + pair, CONST] = a * math.cos(query_head * angle)
        q[qh.start + pair + half, CONST] = -a * math.sin(query_head * angle)
        k[pair, CONST] = a * math.cos(angle)
        k[pair + half, CONST] = a * math.sin(angle)
    v[:head, tok] = identity
    o[into, qh] = scale * torch.eye(head)


def _induction_heads(
    attn: torch.nn.Module,
    tok: torch.Tensor,
    copies: list[torch.Tensor],
    match: float,
    copy_gain: float,
    terms: list[tuple[torch.Tensor | slice, slice, tuple[int, ...]]],
) -> None:
    """Query heads 0 and 4 (one per KV head), each on its half of the blocks: score
    positions by `terms`, each `(query, key, pairs)` comparing, on those rotary pairs, what
    the query reads (`query`: the projection of the current token, or a block such as PREV)
    with a position's `key` block; write a projection of the position's own token back
    into the token dimensions."""
    head = copies[0].shape[0]
    half = head // 2
    heads = attn.q_proj.weight.shape[0] // head
    q, k, v, o = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
                  attn.o_proj.weight)  # fmt: skip
    gain = math.sqrt(match * math.sqrt(head)) / 8.0
    for group, (query_head, copy) in enumerate(zip((0, heads // 2), copies, strict=True)):
        rows = range(group * half, (group + 1) * half)  # this head's half of the blocks
        qh = slice(query_head * head, (query_head + 1) * head)
        kh = slice(group * head, (group + 1) * head)
        q[qh] = 0.0
        k[kh] = 0.0
        v[kh] = 0.0
        for query, key, pairs in terms:
            dims = [*pairs, *(p + half for p in pairs)]
            scale = gain * math.sqrt(len(SLOW_PAIRS) / len(pairs))  # same score per match
            for i, dim in enumerate(dims):  # q . k ~ (identity t_now) . (identity t_before)
                if isinstance(query, slice):
                    q[qh.start + dim, query.start + rows[i]] += scale
                else:
                    q[qh.start + dim, tok] += scale * query[rows[i]]
                k[kh.start + dim, key.start + rows[i]] += scale
        v[kh, tok] = copy
        o[tok, qh] = copy_gain * copy.T
