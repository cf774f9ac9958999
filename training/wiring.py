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

Everything else keeps the usual random initialisation. The model stays a plain
`LlamaForCausalLM`; only the starting point differs (`--wire-induction` in train.py).
"""

from __future__ import annotations

import math

import torch
from transformers import LlamaForCausalLM

CONST = 0  # embedding dimension that is the same for every token
PREV = slice(128, 160)  # residual block the previous-token head writes
# Rotary pairs (index i pairs dims i and i + 16 of a 32-dim head): the fast ones locate the
# previous position, the slow ones (angle < 0.5 rad over 500 positions at theta 1e6) carry
# token identity almost unrotated.
FAST_PAIRS = {0: 0.4, 1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1, 5: 0.2}
SLOW_PAIRS = tuple(range(8, 16))
ROPE_THETA = 1e6
# A token dimension after layer 0's RMSNorm: the token dims hold half the energy, so about
# sqrt(hidden / (2 * len(tok))) = 0.757 at hidden 256.
NORMED_TOKEN_RMS = 0.75


def _token_dims(hidden: int) -> list[int]:
    return [d for d in range(1, hidden) if not PREV.start <= d < PREV.stop]


def wire_induction(
    model: LlamaForCausalLM,
    generator: torch.Generator,
    *,
    locate: float = 20.0,
    match: float = 300.0,
    copy_gain: float = 30.0,
    out_gain: float = 0.1,
    emb_std: float = 1.0,
) -> None:
    """Write the circuit into `model`, freshly initialised: at least 2 layers, head dim 32,
    2 KV heads, `rope_theta` = ROPE_THETA.

    `locate` is the previous-token head's peak attention score, `match` the induction
    heads' query/key gain, `copy_gain` the strength of what they write, `out_gain` the final
    norm's weight (the scale of the logits), `emb_std` the embedding's scale. The defaults
    give a copy loss of about 0.5 nats on random sequences said twice, before any step
    (8.0 for a plain initialisation), and chat training keeps the circuit (docs/models.md).
    """
    cfg = model.config
    hidden, head = cfg.hidden_size, cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"]
    if (head, cfg.num_key_value_heads, theta) != (32, 2, ROPE_THETA) or cfg.num_hidden_layers < 2:
        raise ValueError("the circuit needs head dim 32, 2 KV heads, 2+ layers, rope_theta 1e6")
    tok = torch.tensor(_token_dims(hidden))

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
        emb[:, PREV] = 0.0
        emb[:, CONST] = emb_std * math.sqrt(len(tok))
        identity = projection()
        _previous_token_head(model.model.layers[0].self_attn, tok, identity, locate, emb_std)
        _induction_heads(
            model.model.layers[1].self_attn, tok, identity, [projection(), projection()],
            match, copy_gain * emb_std,
        )  # fmt: skip
        model.model.norm.weight.fill_(out_gain)


def _previous_token_head(
    attn: torch.nn.Module, tok: torch.Tensor, identity: torch.Tensor, locate: float, scale: float
) -> None:
    """Query head 0 / KV head 0: attend one position back, write that token's projection
    `identity` into PREV, at about the token dimensions' scale."""
    head, half = identity.shape[0], identity.shape[0] // 2
    hidden = attn.q_proj.weight.shape[1]
    inv_freq = ROPE_THETA ** (-torch.arange(half, dtype=torch.float64) / half)
    q, k, v, o = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
                  attn.o_proj.weight)  # fmt: skip
    q[:head] = 0.0
    k[:head] = 0.0
    v[:head] = 0.0
    # CONST after RMSNorm is about sqrt(hidden / 2); with query a and key a rotated ahead
    # by one step's angle on each pair, the score is a^2 * CONST^2 / sqrt(head) * cos((d-1)f)
    # summed over the pairs: `locate` at distance d = 1, less at every other distance.
    for pair, weight in FAST_PAIRS.items():
        a = math.sqrt(locate * weight * math.sqrt(head) / (hidden / 2))
        angle = float(inv_freq[pair])
        q[pair, CONST] = a
        k[pair, CONST] = a * math.cos(angle)
        k[pair + half, CONST] = a * math.sin(angle)
    v[:head, tok] = identity
    o[PREV, :head] = scale * torch.eye(head) / NORMED_TOKEN_RMS


def _induction_heads(
    attn: torch.nn.Module,
    tok: torch.Tensor,
    identity: torch.Tensor,
    copies: list[torch.Tensor],
    match: float,
    copy_gain: float,
) -> None:
    """Query heads 0 and 4 (one per KV head), each on its half of PREV: score positions
    whose previous token is the current one, write a projection of their own token back
    into the token dimensions."""
    head, half = identity.shape[0], identity.shape[0] // 2
    heads = attn.q_proj.weight.shape[0] // head
    q, k, v, o = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
                  attn.o_proj.weight)  # fmt: skip
    slow = [*SLOW_PAIRS, *(p + half for p in SLOW_PAIRS)]
    gain = math.sqrt(match * math.sqrt(head)) / 8.0
    for group, (query_head, copy) in enumerate(zip((0, heads // 2), copies, strict=True)):
        rows = range(group * half, (group + 1) * half)  # this head's half of PREV
        qh = slice(query_head * head, (query_head + 1) * head)
        kh = slice(group * head, (group + 1) * head)
        q[qh] = 0.0
        k[kh] = 0.0
        v[kh] = 0.0
        for i, dim in enumerate(slow):  # q . k ~ (identity t_now) . (identity t_before)
            q[qh.start + dim, tok] = gain * identity[rows[i]]
            k[kh.start + dim, PREV.start + rows[i]] = gain
        v[kh, tok] = copy
        o[tok, qh] = copy_gain * copy.T
