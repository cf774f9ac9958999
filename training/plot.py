"""Plot the training loss of a run (``train_log.jsonl``) to a PNG.

python -m training.plot --log training/runs/latest/train_log.jsonl --out docs/loss_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on build machines
import matplotlib.pyplot as plt


def smooth(values: list[float], alpha: float = 0.05) -> list[float]:
    """Exponential moving average (batches differ a lot in length and task mix)."""
    out, avg = [], values[0]
    for v in values:
        avg = alpha * v + (1 - alpha) * avg
        out.append(avg)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", type=Path, default=Path("training/runs/latest/train_log.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("docs/loss_curve.png"))
    args = parser.parse_args()
    records = [json.loads(line) for line in args.log.read_text().splitlines() if line]
    steps = [r["step"] for r in records]
    losses = [r["loss"] for r in records]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="per step")
    ax.plot(steps, smooth(losses), color="tab:blue", linewidth=2, label="moving average")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy on assistant tokens")
    minutes = records[-1]["elapsed_s"] / 60
    tokens = records[-1]["tokens"] / 1e6
    ax.set_title(
        f"headrace-tiny-chat training loss ({len(records)} steps, {minutes:.0f} min, "
        f"{tokens:.1f}M tokens)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
