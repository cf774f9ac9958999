"""Owns the weights and the KV cache; turns a scheduled step into one forward pass."""

from __future__ import annotations

from pathlib import Path

import torch

from headrace.engine.attention import AttentionMetadata, PrefillSlice
from headrace.engine.model import LlamaModel, load_model
from headrace.engine.sequence import Sequence

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelRunner:
    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        kv_cache_bytes: int = 128 * 1024 * 1024,
        block_size: int = 16,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        self.block_size = block_size
        self.model: LlamaModel = load_model(model_dir, dtype=self.dtype, device=self.device)
        c = self.model.config
        self.max_model_len = c.max_position_embeddings
        per_block = c.num_layers * 2 * block_size * c.num_kv_heads * c.head_dim
        per_block *= self.dtype.itemsize
        # Never smaller than one full-length sequence: any admitted request can run.
        self.num_blocks = max(kv_cache_bytes // per_block, -(-self.max_model_len // block_size) + 1)
        self.kv_cache_bytes = self.num_blocks * per_block
        self.kv_cache = torch.zeros(
            (c.num_layers, 2, self.num_blocks, block_size, c.num_kv_heads, c.head_dim),
            dtype=self.dtype,
            device=self.device,
        )

    @torch.inference_mode()
    def run(
        self, decodes: list[Sequence], prefills: list[tuple[Sequence, int]]
    ) -> tuple[list[Sequence], torch.Tensor]:
        """One forward over every scheduled token. Returns the sequences that reached their
        last token (they sample next) and their logits, one row each."""
        tokens: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        rows: list[int] = []
        sampling: list[Sequence] = []
        bs = self.block_size

        def add(seq: Sequence, n: int) -> None:
            start = seq.num_computed
            table = seq.block_table
            tokens.extend(seq.token_ids[start : start + n])
            for p in range(start, start + n):
                positions.append(p)
                slots.append(table[p // bs] * bs + p % bs)
            if start + n == len(seq):
                rows.append(len(tokens) - 1)
                sampling.append(seq)

        for seq in decodes:
            add(seq, 1)
        slices = []
        for seq, n in prefills:
            begin = len(tokens)
            add(seq, n)
            slices.append(self._prefill_slice(seq, begin, n))
        decode_blocks, decode_mask = self._decode_index(decodes) if decodes else (None, None)
        meta = AttentionMetadata(
            kv_cache=self.kv_cache,
            slot_mapping=self._tensor(slots),
            num_decode=len(decodes),
            decode_blocks=decode_blocks,
            decode_mask=decode_mask,
            prefills=tuple(slices),
        )
        logits = self.model(self._tensor(tokens), self._tensor(positions), meta, self._tensor(rows))
        return sampling, logits

    def _tensor(self, values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.device)

    def _prefill_slice(self, seq: Sequence, begin: int, n: int) -> PrefillSlice:
        context = seq.num_computed + n
        mask = None
        if seq.num_computed:  # a cached prefix or an earlier chunk: causal with an offset
            q_pos = torch.arange(seq.num_computed, context, device=self.device)
            mask = torch.arange(context, device=self.device)[None, :] <= q_pos[:, None]
        blocks = self._tensor(seq.block_table[: -(-context // self.block_size)])
        return PrefillSlice(begin, begin + n, blocks, context, mask)

    def _decode_index(self, decodes: list[Sequence]) -> tuple[torch.Tensor, torch.Tensor]:
        """Block ids each decode reads (rows padded to the longest) and the validity mask."""
        lengths = [len(s) for s in decodes]  # context includes the token computed now
        width = -(-max(lengths) // self.block_size)
        padded = [s.block_table[:width] + [0] * (width - len(s.block_table)) for s in decodes]
        blocks = torch.tensor(padded, dtype=torch.long, device=self.device).flatten()
        positions = torch.arange(width * self.block_size, device=self.device)
        valid = positions[None, :] < self._tensor(lengths)[:, None]
        return blocks, valid[:, None, None, :]
