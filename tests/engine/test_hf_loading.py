"""transformers loads run one at a time: two at once can leave every model in the process
untied (headrace/engine/hf_loading.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from transformers.modeling_utils import PreTrainedModel

from headrace.config import load_settings
from headrace.engine.embedder import Embedder
from headrace.engine.hf_loading import load


class SlowModel:
    """A model class whose loads take a while and count how many run at once."""

    running = 0
    most = 0

    @classmethod
    def from_pretrained(cls, model_dir: Path, **kwargs: Any) -> str:
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        time.sleep(0.02)
        cls.running -= 1
        return f"{model_dir}:{kwargs}"


def test_loads_in_several_threads_run_one_at_a_time() -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(load(SlowModel, Path("m"), dtype="x")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["m:{'dtype': 'x'}"] * 4
    assert SlowModel.most == 1


def test_embedders_loaded_at_once_leave_tying_intact() -> None:
    """Without the lock, rounds like these left `tie_weights` a no-op for the rest of the
    process within a few rounds (and the test suite's wiring tests failing after them)."""
    path = next(m for m in load_settings().models if m.kind == "embedding").resolved_path()
    tie_weights = PreTrainedModel.tie_weights
    for _ in range(3):
        threads = [threading.Thread(target=Embedder, args=(path,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert PreTrainedModel.tie_weights is tie_weights
