"""`headrace bench serve`: load any OpenAI-compatible server and report its latencies."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from headrace.bench.client import Result, Target, run
from headrace.bench.report import plot, summarize
from headrace.bench.workload import arrivals, workload

bench_app = typer.Typer(help="Benchmark an OpenAI-compatible server.", no_args_is_help=True)
console = Console(stderr=True)


@bench_app.command("serve")
def serve(
    base_url: Annotated[str, typer.Option(help="The API root, e.g. http://127.0.0.1:8000/v1")],
    model: Annotated[str, typer.Option(help="The model to ask.")],
    api_key: Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="Bearer key.")] = "",
    num_prompts: Annotated[int, typer.Option(min=1, help="Requests per run.")] = 100,
    request_rate: Annotated[
        str, typer.Option(help="Poisson arrivals, requests/s; a list (1,2,4) sweeps; inf: all")
    ] = "inf",
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="At most this many requests in flight.")
    ] = None,
    input_len: Annotated[int, typer.Option(min=1, help="Mean prompt length, in words.")] = 128,
    output_len: Annotated[int, typer.Option(min=1, help="Mean max_tokens.")] = 128,
    spread: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Lengths vary uniformly by ± this fraction.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Same seed, same prompts and arrival times.")] = 0,
    output_json: Annotated[Path | None, typer.Option(help="Write the summaries here.")] = None,
    plot_png: Annotated[
        Path | None, typer.Option("--plot", help="PNG of latency against load (matplotlib).")
    ] = None,
) -> None:
    """Send a workload at each request rate and report TTFT, TPOT, ITL and E2E."""
    try:
        rates = [float(r) for r in request_rate.split(",")]
    except ValueError as exc:
        raise typer.BadParameter(f"not a rate list: {request_rate}") from exc
    target = Target(base_url.rstrip("/"), model, api_key)
    requests = workload(
        num_prompts, input_len=input_len, output_len=output_len, spread=spread, seed=seed
    )
    runs = []
    for rate in rates:
        load = {
            "request_rate": rate if rate != float("inf") else "inf",  # strict JSON: no Infinity
            "concurrency": concurrency,
            "num_prompts": num_prompts,
            "input_len": input_len,
            "output_len": output_len,
            "spread": spread,
        }
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"rate {rate:g} req/s", total=num_prompts)
            results, duration = asyncio.run(
                run(
                    target,
                    requests,
                    arrivals(num_prompts, rate, seed),
                    concurrency=concurrency,
                    on_done=functools.partial(_advance, progress, task),
                )
            )
        runs.append(summarize(results, duration, load))
        _print(runs[-1])
    if output_json is not None:
        report = {"target": base_url, "model": model, "runs": runs}
        output_json.write_text(json.dumps(report, indent=2, allow_nan=False))
    if plot_png is not None:
        plot(runs, plot_png)


def _advance(progress: Progress, task: TaskID, _: Result) -> None:
    progress.advance(task)


def _print(summary: dict[str, Any]) -> None:
    load = summary["load"]
    table = Table(
        title=f"rate {load['request_rate']} req/s, concurrency {load['concurrency'] or '∞'}: "
        f"{summary['completed']} ok, {summary['failed']} failed, "
        f"{summary['request_throughput']:.2f} req/s, "
        f"{summary['output_token_throughput']:.1f} output tok/s"
    )
    table.add_column("ms")
    for column in ("mean", "p50", "p90", "p99"):
        table.add_column(column, justify="right")
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        row = summary[key]
        table.add_row(key.removesuffix("_ms").upper(), *(_cell(row[c]) for c in row))
    console.print(table)
    if summary["errors"]:
        console.print(f"[red]errors: {', '.join(summary['errors'])}[/red]")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
