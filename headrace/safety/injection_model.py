"""The learned half of the prompt-injection score: a sentence embedding (the moderation
model's MiniLM encoder) and one logistic regression, trained by `training/injection/train.py`
on the seeded set in `training/injection/samples.py`. `injection.py` combines its probability
with the rules' score."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "headrace-moderation"
Embed = Callable[[list[str]], list[list[float]]]
MAX_CHARS = 2000  # tool results can be long: the head reads their start (where orders sit)


class InjectionClassifier:
    def __init__(self, weights: npt.NDArray[np.float32], bias: float, embed: Embed) -> None:
        self.weights = weights
        self.bias = bias
        self._embed = embed

    @classmethod
    def load(cls, embed: Embed, model_dir: Path = MODEL_DIR) -> InjectionClassifier:
        with np.load(model_dir / "injection.npz") as arrays:
            weights = arrays["weights"].astype(np.float32)
        meta = json.loads((model_dir / "injection.json").read_text())
        return cls(weights, float(meta["bias"]), embed)

    def save(self, model_dir: Path, metadata: dict[str, object]) -> None:
        np.savez(model_dir / "injection.npz", weights=self.weights)
        meta = metadata | {"bias": self.bias}
        (model_dir / "injection.json").write_text(json.dumps(meta, indent=2) + "\n")

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """P(injection) per text. Blocking: the encoder's forward pass."""
        if not texts:
            return []
        vectors = np.asarray(self._embed([t[:MAX_CHARS] for t in texts]), dtype=np.float32)
        logits = vectors @ self.weights + self.bias
        return [float(p) for p in 1.0 / (1.0 + np.exp(-logits))]
