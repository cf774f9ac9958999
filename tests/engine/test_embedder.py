"""The bundled embedder is the real all-MiniLM-L6-v2, loaded offline from site-packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from headrace.config import load_settings
from headrace.engine.embedder import Embedder

TEXTS = ["The cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly tax filing"]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    settings = next(m for m in load_settings().models if m.kind == "embedding")
    return settings.resolved_path()


def test_matches_sentence_transformers(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # proves nothing is fetched
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = torch.tensor(reference.encode(TEXTS, normalize_embeddings=True))
    ours = torch.tensor(Embedder(model_dir).embed(TEXTS))
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_similarity_ranks_meaning(model_dir: Path) -> None:
    vectors = torch.tensor(Embedder(model_dir).embed(TEXTS))
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3
