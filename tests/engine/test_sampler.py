"""The per-sequence sampler: parameters, seeds and filters."""

from __future__ import annotations

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from headrace.engine.interface import SamplingParams
from headrace.engine.sampler import SequenceSampler, _filtered_probs

CPU = torch.device("cpu")
EOS = 0


def sampler(**kwargs: object) -> SequenceSampler:
    params = SamplingParams(max_tokens=16, **kwargs)  # type: ignore[arg-type]
    return SequenceSampler(params, eos_token_id=EOS, device=CPU)


def logits() -> torch.Tensor:
    return torch.tensor([0.5, 3.0, 1.0, 2.9, -1.0])


def test_greedy_takes_argmax() -> None:
    assert sampler(temperature=0).sample(logits(), ()).token_id == 1


def test_top_k_one_is_greedy() -> None:
    s = sampler(temperature=1.0, top_k=1)
    assert {s.sample(logits(), ()).token_id for _ in range(20)} == {1}


def test_same_seed_same_draws() -> None:
    def draws(seed: int) -> list[int]:
        s = sampler(temperature=1.0, seed=seed)
        return [s.sample(logits(), ()).token_id for _ in range(30)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def test_logit_bias_forces_a_token() -> None:
    assert sampler(temperature=0, logit_bias=((4, 100.0),)).sample(logits(), ()).token_id == 4


def test_min_tokens_bans_eos() -> None:
    eos_heavy = torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0])
    assert sampler(temperature=0, min_tokens=2).sample(eos_heavy, ()).token_id != EOS
    assert sampler(temperature=0).sample(eos_heavy, ()).token_id == EOS


def test_presence_penalty_moves_away_from_repeats() -> None:
    s = sampler(temperature=0, presence_penalty=2.0)
    first = s.sample(logits(), ()).token_id
    second = s.sample(logits(), ()).token_id
    assert (first, second) == (1, 3)


def test_repetition_penalty_applies_to_prompt_tokens() -> None:
    assert sampler(temperature=0, repetition_penalty=2.0).sample(logits(), (1,)).token_id == 3


def test_logprobs_report_the_chosen_token_and_top() -> None:
    sample = sampler(temperature=0, logprobs=2).sample(logits(), ())
    assert sample.logprob is not None
    assert [t for t, _ in sample.logprob.top] == [1, 3]
    expected = torch.log_softmax(logits(), dim=-1)[1].item()
    assert abs(sample.logprob.logprob - expected) < 1e-6


@settings(max_examples=60)
@given(
    st.lists(st.floats(-20, 20), min_size=2, max_size=40),
    st.floats(0.05, 1.0),
    st.integers(0, 10),
    st.floats(0.0, 0.9),
)
@example([0.0, 0.0, 1.0], 1.0, 2, 0.0)  # a tie at the k-th value keeps both
def test_filtered_probs_form_a_distribution_over_the_best_tokens(
    values: list[float], top_p: float, top_k: int, min_p: float
) -> None:
    x = torch.tensor(values)
    probs = _filtered_probs(x, top_k, top_p, min_p)
    original = torch.softmax(x, dim=-1)
    assert abs(float(probs.sum()) - 1.0) < 1e-4
    kept = probs > 0
    assert bool(kept.any())
    # Whatever is kept is at least as likely as whatever is dropped (ties may go either way).
    if (~kept).any():
        assert float(original[kept].min()) >= float(original[~kept].max()) - 1e-7
    if top_k:
        # At most top_k - 1 above the k-th value, plus every token tied with it.
        ties = int((original == original[kept].min()).sum())
        assert int(kept.sum()) <= max(top_k, top_k - 1 + ties)
