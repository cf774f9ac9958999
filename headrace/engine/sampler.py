"""Turns one sequence's next-token logits into a token, under its sampling parameters.

Each sequence owns a `torch.Generator`: a seeded request draws the same numbers whatever
else runs beside it, so the same seed gives the same output alone or in a batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from headrace.engine.interface import SamplingParams, TokenLogprob
from headrace.engine.structured import Constraint


@dataclass(frozen=True, slots=True)
class Sample:
    token_id: int
    logprob: TokenLogprob | None


class SequenceSampler:
    """Sampling state of one sequence: its parameters, generator and token counts."""

    __slots__ = ("_banned_early", "_bias", "_counts", "_generator", "constraint", "params")

    def __init__(
        self,
        params: SamplingParams,
        *,
        eos_token_id: int,
        device: torch.device,
        constraint: Constraint | None = None,
    ) -> None:
        self.params = params
        self.constraint = constraint
        self._generator = torch.Generator(device=device)
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        self._generator.manual_seed(seed & ((1 << 63) - 1))
        self._counts: dict[int, int] = {}
        self._bias = params.logit_bias
        # Tokens that would end the sequence may not be drawn before `min_tokens`.
        stops = set(params.stop_token_ids)
        if not params.ignore_eos:
            stops.add(eos_token_id)
        self._banned_early = sorted(stops)

    def sample(self, logits: torch.Tensor, prompt_ids: tuple[int, ...]) -> Sample:
        """Choose the next token from a 1-D logits row (the model's raw output)."""
        p = self.params
        raw = logits.float()
        logits = raw.clone()
        self._penalise(logits, prompt_ids)
        for token_id, bias in self._bias:
            logits[token_id] += bias
        if sum(self._counts.values()) < p.min_tokens and self._banned_early:
            logits[self._banned_early] = float("-inf")
        if self.constraint is not None:
            self.constraint.mask(logits)

        if p.temperature == 0:
            token_id = int(torch.argmax(logits))
        else:
            probs = _filtered_probs(logits / p.temperature, p.top_k, p.top_p, p.min_p)
            token_id = int(torch.multinomial(probs, 1, generator=self._generator))
        self._counts[token_id] = self._counts.get(token_id, 0) + 1
        if self.constraint is not None:
            self.constraint.accept(token_id)
        return Sample(token_id, _logprob(raw, token_id, p.logprobs))

    def _penalise(self, logits: torch.Tensor, prompt_ids: tuple[int, ...]) -> None:
        p = self.params
        if self._counts and (p.presence_penalty or p.frequency_penalty):
            ids = torch.tensor(list(self._counts), dtype=torch.long)
            counts = torch.tensor(list(self._counts.values()), dtype=logits.dtype)
            logits[ids] -= p.frequency_penalty * counts + p.presence_penalty
        if p.repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(prompt_ids) | set(self._counts)), dtype=torch.long)
            picked = logits[seen]
            logits[seen] = torch.where(
                picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty
            )


def _filtered_probs(logits: torch.Tensor, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if min_p > 0:
        probs = probs.masked_fill(probs < min_p * probs.max(), 0.0)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest set whose mass reaches top_p: drop a token once the mass
        # before it already does.
        drop = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return probs / probs.sum()


def _logprob(raw: torch.Tensor, token_id: int, top: int | None) -> TokenLogprob | None:
    if top is None:
        return None
    logprobs = torch.log_softmax(raw, dim=-1)
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        values, ids = torch.topk(logprobs, top)
        best = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token_id, float(logprobs[token_id]), best)
