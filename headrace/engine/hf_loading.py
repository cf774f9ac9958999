"""Loading a `transformers` model, one load at a time in a process.

    model = load(AutoModel, model_dir)

While `from_pretrained` loads, it swaps class attributes that every model shares (its
`no_tie_weights` puts a no-op in place of `PreTrainedModel.tie_weights`, then puts back
what it found). Two loads in two threads can interleave so that the no-op is put back
last: from then on no model in the process ties its output layer to its embedding, and a
checkpoint saved with tied weights loads with a head of uninitialised memory. Gateways in
one process (the test suite's replicas, a gateway beside its batch worker) load their
embedders at the same time; this lock keeps the loads apart.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

_LOADING = threading.Lock()


def load(cls: Any, model_dir: Path, **kwargs: Any) -> Any:
    """`cls.from_pretrained(model_dir, **kwargs)`, never beside another load."""
    with _LOADING:
        return cls.from_pretrained(model_dir, **kwargs)
