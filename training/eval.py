"""Exact-match eval of headrace-tiny-chat on held-out generated conversations.

Every graded assistant turn is generated greedily (temperature 0) from the gold
conversation before it and must equal the reference reply exactly.  The eval
split uses its own seed and only arithmetic operand pairs, words, names and
cities that the training split never contains (see ``training/corpus.py``).

    python -m training.eval --model models/headrace-tiny-chat --per-family 60

The per-family table is written between ``<!-- eval:start -->`` and
``<!-- eval:end -->`` in every ``--report`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see training/train.py

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from training.corpus import FAMILIES, eval_set
from training.template import IM_END, render

START, END = "<!-- eval:start -->", "<!-- eval:end -->"


@dataclass
class Item:
    """One graded turn: the prompt text and the exact reply expected."""

    family: str
    prompt: str
    expected: str
    output: str = ""

    @property
    def correct(self) -> bool:
        return self.output == self.expected


def build_items(per_family: int, seed: int) -> list[Item]:
    """Prompts and references for ``per_family`` graded turns of every family."""
    items = []
    for conv in eval_set(per_family, seed):
        for index, family in conv.targets:
            prompt = render(conv.messages[:index], conv.tools, add_generation_prompt=True)
            full = render(conv.messages[: index + 1], conv.tools)
            expected = full[len(prompt) : -len(IM_END + "\n")]
            items.append(Item(family, prompt, expected))
    return items


@torch.no_grad()
def generate(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items: list[Item], batch_size: int
) -> None:
    """Greedy completions (up to ``<|im_end|>``) for ``items``, in place."""
    tokenizer.padding_side = "left"
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt))
    for b in range(0, len(order), batch_size):
        batch = [items[i] for i in order[b : b + batch_size]]
        enc = tokenizer(
            [it.prompt for it in batch], return_tensors="pt", padding=True, add_special_tokens=False
        )
        # Room for the longest reference plus slack, so wrong answers can run on.
        budget = max(len(tokenizer(it.expected)["input_ids"]) for it in batch) + 16
        out = model.generate(
            **enc,
            max_new_tokens=budget,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for it, row in zip(batch, out[:, enc["input_ids"].shape[1] :], strict=True):
            text = str(tokenizer.decode(row, skip_special_tokens=False))
            it.output = text.split(IM_END)[0]


def table(items: list[Item]) -> str:
    """Markdown table of exact-match accuracy per family and overall."""
    lines = ["| family | correct | total | accuracy |", "|---|---:|---:|---:|"]
    for family in FAMILIES:
        group = [it for it in items if it.family == family]
        ok = sum(it.correct for it in group)
        lines.append(f"| {family} | {ok} | {len(group)} | {ok / len(group):.1%} |")
    ok = sum(it.correct for it in items)
    lines.append(f"| **overall** | **{ok}** | **{len(items)}** | **{ok / len(items):.1%}** |")
    return "\n".join(lines)


def write_report(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace the text between the ``start`` and ``end`` markers of ``path`` (if any)."""
    if not path.exists():
        return
    doc = path.read_text()
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        path.write_text(head + start + "\n" + text + "\n" + end + rest.split(end, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/headrace-tiny-chat"))
    parser.add_argument("--per-family", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--report",
        type=Path,
        nargs="*",
        default=[Path("docs/models.md"), Path("models/headrace-tiny-chat/README.md")],
    )
    parser.add_argument("--json", type=Path, default=Path("training/runs/latest/eval.json"))
    parser.add_argument("--show-failures", type=int, default=3, help="per family")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    model = AutoModelForCausalLM.from_pretrained(str(args.model)).eval()
    items = build_items(args.per_family, args.seed)
    started = time.time()
    generate(model, tokenizer, items, args.batch_size)
    elapsed = time.time() - started

    for family in FAMILIES:
        failures = [it for it in items if it.family == family and not it.correct]
        for it in failures[: args.show_failures]:
            print(
                f"[{family}] expected {it.expected!r}\n{' ' * (len(family) + 3)}got      "
                f"{it.output!r}"
            )
    result = table(items)
    print(result)
    print(f"{len(items)} turns in {elapsed:.0f}s")
    note = (
        f"\n\nExact match, greedy decoding, {args.per_family} held-out turns per family "
        f"(eval seed {args.seed})."
    )
    for report in args.report:
        write_report(report, result + note)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "per_family": {
                    f: sum(it.correct for it in items if it.family == f) / args.per_family
                    for f in FAMILIES
                },
                "overall": sum(it.correct for it in items) / len(items),
                "items": [it.__dict__ for it in items],
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
