"""Turn conversations into token ids with an assistant-only loss mask, and batch them."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from training.corpus import Conversation
from training.template import render

IGNORE_INDEX = -100


@dataclass
class Example:
    """One tokenised conversation; ``labels`` is ``IGNORE_INDEX`` outside assistant turns."""

    input_ids: list[int]
    labels: list[int]


def assistant_spans(conv: Conversation) -> list[tuple[int, int]]:
    """Character spans of every assistant reply *including* its ``<|im_end|>``.

    Rendering prefixes with the real template keeps the spans exact whatever the
    template does around a turn (system prompt, tools block, tool calls).
    """
    spans = []
    for i, message in enumerate(conv.messages):
        if message["role"] == "assistant":
            start = len(render(conv.messages[:i], conv.tools, add_generation_prompt=True))
            end = len(render(conv.messages[: i + 1], conv.tools)) - 1  # drop the final "\n"
            spans.append((start, end))
    return spans


def encode(tokenizer: Tokenizer, convs: Sequence[Conversation]) -> list[Example]:
    """Tokenise conversations; only tokens inside assistant replies carry a label."""
    texts = [render(c.messages, c.tools) for c in convs]
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    examples = []
    for conv, enc in zip(convs, encodings, strict=True):
        spans = assistant_spans(conv)
        labels = []
        for token, (lo, hi) in zip(enc.ids, enc.offsets, strict=True):
            inside = any(s <= lo and hi <= e for s, e in spans)
            labels.append(token if inside else IGNORE_INDEX)
        examples.append(Example(list(enc.ids), labels))
    return examples


def make_batches(
    examples: Iterable[Example], batch_tokens: int, max_len: int, seed: int, pad_id: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed, right-padded batches of about ``batch_tokens`` tokens each.

    Right padding needs no attention mask under causal attention: real tokens
    never attend to the padding that follows them, and padding has no label.
    """
    kept = [e for e in examples if len(e.input_ids) <= max_len]
    rng = random.Random(seed)
    rng.shuffle(kept)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    # Sort within large windows so batches have similar lengths but stay mixed.
    window = 2000
    for w in range(0, len(kept), window):
        chunk = sorted(kept[w : w + window], key=lambda e: len(e.input_ids))
        i = 0
        while i < len(chunk):
            width = -(-len(chunk[i].input_ids) // 16) * 16
            rows = max(1, batch_tokens // width)
            group = chunk[i : i + rows]
            width = -(-max(len(e.input_ids) for e in group) // 16) * 16
            ids = torch.full((len(group), width), pad_id, dtype=torch.long)
            labels = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
            for r, e in enumerate(group):
                ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
                labels[r, : len(e.labels)] = torch.tensor(e.labels)
            batches.append((ids, labels))
            i += rows
    rng.shuffle(batches)
    return batches
