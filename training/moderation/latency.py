"""How long one moderation check takes on this machine's CPU.

    python -m training.moderation.latency [--threads N]

Times `Moderator.score` (encoder forward, head, rules) for the texts the gateway checks: a
short prompt, one output window, a long prompt (several chunks). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from headrace.config import ModelSettings
from headrace.engine.embedder import Embedder
from headrace.safety.moderation import ENCODER_PATH, Moderator

SENTENCE = "Can you write a short story about a sailor who gets lost at sea?"
CASES = {
    "short prompt (64 chars)": SENTENCE,
    "output window (256 chars, the default)": ((SENTENCE + " ") * 4)[:256],
    "output window (512 chars)": ((SENTENCE + " ") * 8)[:512],
    "long prompt (4,000 chars, 7 chunks)": ((SENTENCE + " ") * 62)[:4000],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = ModelSettings(name="encoder", kind="embedding", path=ENCODER_PATH).resolved_path()
    moderator = Moderator.load(Embedder(path).embed)
    print(f"| check ({args.threads} thread(s)) | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, text in CASES.items():
        moderator.score([text])  # warm up
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            moderator.score([text])
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
