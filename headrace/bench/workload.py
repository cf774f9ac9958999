"""What a benchmark sends and when: prompts, output lengths and arrival times. Pure and
seeded, so two runs against two servers send exactly the same load."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Common English words: most tokenizers spend about one token on each (with its space).
_TEXT = (
    "the of and to in is was for on that with as by at from this be are or an it not "
    "which have were but all their has been one they more other some time can these "
    "would into its only new two first also any may after most such over where many"
)
_WORDS = tuple(_TEXT.split())


@dataclass(frozen=True, slots=True)
class BenchRequest:
    prompt: str
    max_tokens: int


def workload(
    n: int, *, input_len: int, output_len: int, spread: float = 0.0, seed: int = 0
) -> list[BenchRequest]:
    """`n` requests of about `input_len` words asking for about `output_len` tokens; each
    length is drawn uniformly within ±`spread` (a fraction) of its mean."""
    rng = random.Random(seed)

    def length(mean: int) -> int:
        low, high = round(mean * (1 - spread)), round(mean * (1 + spread))
        return max(1, rng.randint(low, high))

    return [
        BenchRequest(
            " ".join(rng.choice(_WORDS) for _ in range(length(input_len))), length(output_len)
        )
        for _ in range(n)
    ]


def arrivals(n: int, rate: float, seed: int = 0) -> list[float]:
    """Send times in seconds from the start: a Poisson process at `rate` requests per
    second (exponential gaps), or all at once when `rate` is infinite."""
    if rate == float("inf"):
        return [0.0] * n
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out
