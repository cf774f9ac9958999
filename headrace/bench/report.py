"""Turning results into numbers: throughput and latency percentiles, a JSON summary and a
PNG of latency against load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headrace.bench.client import Result

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`th percentile by linear interpolation (numpy's default), NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _stats_ms(values: Sequence[float]) -> dict[str, float | None]:
    def ms(x: float) -> float | None:
        return None if math.isnan(x) else round(x * 1000, 3)

    mean = sum(values) / len(values) if values else math.nan
    return {"mean": ms(mean)} | {f"p{p}": ms(percentile(values, p)) for p in PERCENTILES}


def summarize(results: list[Result], duration_s: float, load: dict[str, Any]) -> dict[str, Any]:
    """One run's summary: what was asked (`load`), what came back, latencies in ms."""
    ok = [r for r in results if r.ok]
    output = sum(r.output_tokens for r in ok)
    return {
        "load": load,
        "duration_s": round(duration_s, 3),
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if r.error}),
        "request_throughput": len(ok) / duration_s if duration_s else 0.0,
        "output_token_throughput": output / duration_s if duration_s else 0.0,
        "total_token_throughput": (output + sum(r.prompt_tokens for r in ok)) / duration_s
        if duration_s
        else 0.0,
        "ttft_ms": _stats_ms([r.ttft_s for r in ok if r.ttft_s is not None]),
        "tpot_ms": _stats_ms([t for r in ok if (t := r.tpot_s) is not None]),
        "itl_ms": _stats_ms([gap for r in ok for gap in r.itl_s]),
        "e2e_ms": _stats_ms([r.e2e_s for r in ok]),
    }


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """p50 and p99 TTFT and end-to-end latency against achieved request throughput."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    x = [run["request_throughput"] for run in runs]
    fig, (ttft, e2e) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((ttft, "ttft_ms", "Time to first token"), (e2e, "e2e_ms", "End to end")):
        for p in ("p50", "p99"):
            ax.plot(x, [run[key][p] for run in runs], marker="o", label=p)
        ax.set_title(title)
        ax.set_xlabel("requests / s (achieved)")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
