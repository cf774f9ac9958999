"""Write a training run's summary into the docs (between ``<!-- train:start/end -->``).

python -m training.report --summary training/runs/latest/summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.eval import write_report

START, END = "<!-- train:start -->", "<!-- train:end -->"


def describe(summary: dict[str, object], size_bytes: int) -> str:
    """A markdown list of the facts of one run."""
    args = summary["args"]
    assert isinstance(args, dict)
    train_min = float(str(summary["train_wall_s"])) / 60
    total_min = float(str(summary["total_wall_s"])) / 60
    return "\n".join(
        [
            f"- Wall time: {total_min:.1f} min in all ({train_min:.1f} min of optimizer steps, "
            f"the rest corpus generation, tokenizer training and tokenisation), "
            f"{args['threads']} CPU threads.",
            f"- Parameters: {int(str(summary['parameters'])):,} (checkpoint directory "
            f"{size_bytes / 2**20:.1f} MiB).",
            f"- Steps: {summary['steps']:,}; tokens seen: {int(str(summary['tokens_seen'])):,} "
            f"(padding included), of which {int(str(summary['loss_tokens_seen'])):,} assistant "
            "tokens carried the loss.",
            f"- Final training loss (last step, assistant tokens): {summary['final_loss']}.",
            f"- Seed {args['seed']}, {args['conversations']:,} conversations generated, peak "
            f"learning rate {args['lr']}, batches of ≈{args['batch_tokens']:,} tokens.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--summary", type=Path, default=Path("training/runs/latest/summary.json"))
    parser.add_argument("--model", type=Path, default=Path("models/headrace-tiny-chat"))
    parser.add_argument(
        "--report",
        type=Path,
        nargs="*",
        default=[Path("docs/models.md"), Path("models/headrace-tiny-chat/README.md")],
    )
    args = parser.parse_args()
    summary = json.loads(args.summary.read_text())
    size = sum(p.stat().st_size for p in args.model.iterdir() if p.is_file())
    text = describe(summary, size)
    for report in args.report:
        write_report(report, text, START, END)
    print(text)


if __name__ == "__main__":
    main()
