"""One generation in flight: its tokens, how many are in the KV cache, and its blocks."""

from __future__ import annotations

import enum
import itertools
import time

from headrace.engine.interface import SamplingParams

_arrivals = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Sequence:
    """Token ids (prompt, then output) and cache bookkeeping of one request.

    `num_computed` tokens have their keys and values in the cache; the rest are computed
    by coming steps (a prompt in chunks, then one new token per step). Preemption sets it
    back to 0: the tokens stay, the cache is recomputed when the sequence runs again.
    """

    __slots__ = (
        "arrival",
        "block_hashes",
        "block_table",
        "num_cached",
        "num_computed",
        "num_marked_blocks",
        "num_prompt_tokens",
        "params",
        "preemptions",
        "priority",
        "request_id",
        "scheduled_s",
        "status",
        "submitted_s",
        "tenant",
        "token_ids",
    )

    def __init__(
        self,
        request_id: str,
        prompt: list[int],
        params: SamplingParams,
        *,
        priority: int = 0,
        tenant: str = "",
    ) -> None:
        self.request_id = request_id
        self.token_ids = list(prompt)
        self.num_prompt_tokens = len(prompt)
        self.params = params
        self.priority = priority
        self.tenant = tenant
        self.arrival = next(_arrivals)
        self.submitted_s = time.perf_counter()
        self.scheduled_s: float | None = None  # its first step began: the wait is over
        self.status = SequenceStatus.WAITING
        self.num_computed = 0
        self.num_cached = 0  # prompt tokens served from the prefix cache at first admission
        self.block_table: list[int] = []
        self.num_marked_blocks = 0  # leading blocks already marked computed
        self.block_hashes: list[int] = []  # hash of each full block of token_ids, memoised
        self.preemptions = 0

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_pending(self) -> int:
        """Tokens whose keys and values are not in the cache yet."""
        return len(self.token_ids) - self.num_computed

    @property
    def is_decoding(self) -> bool:
        return self.num_pending == 1 and self.num_output_tokens > 0

    @property
    def sort_key(self) -> tuple[int, int]:
        return self.priority, self.arrival
