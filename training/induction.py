"""Synthetic copy batches: random token sequences said twice, the loss on the repeat.

A model this small did not learn to copy from the chat corpus alone in the time a 2-core
CPU gives it (docs/models.md: runs 1-4): copying needs an induction head, a circuit that
finds the earlier occurrence of the current token and predicts what followed it. On
random sequences repeated, nothing but that circuit lowers the loss (it formed by step 800
of run 5, but not in runs 6 to 8: docs/models.md); `train.py --induction-steps` starts a
run with such batches so that the chat
tasks that copy (spelling, repeating, remembering, JSON values, tool arguments, operands)
find it there, and `--induction-every` keeps a few of them in the mix afterwards.
"""

from __future__ import annotations

import torch

from training.data import IGNORE_INDEX


def copy_batch(
    generator: torch.Generator,
    *,
    batch: int,
    low: int,
    high: int,
    min_len: int = 8,
    max_len: int = 40,
    separator: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` rows of `seq + seq`, `seq` of random ids in [low, high) and of one random
    length per batch; labels only on the repeat, after its first token (which nothing in
    the row announces). With a `separator`, every id of `seq` is followed by it, as words
    are by a space (what the bigram-matching heads of training/wiring.py are for)."""
    length = int(torch.randint(min_len, max_len + 1, (1,), generator=generator))
    seq = torch.randint(low, high, (batch, length), generator=generator)
    if separator is not None:
        seq = torch.stack([seq, torch.full_like(seq, separator)], dim=2).reshape(batch, -1)
        length *= 2
    ids = torch.cat([seq, seq], dim=1)
    labels = ids.clone()
    labels[:, : length + 1] = IGNORE_INDEX
    return ids, labels
