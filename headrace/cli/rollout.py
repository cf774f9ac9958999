"""`headrace rollout show | set | clear MODEL`: a model's traffic split between the versions
of its deployments, on the configured database (every gateway applies a change within
`routing.rollout_cache_ttl_s`).

    headrace rollout set big v1=95 v2=5     # a 5% canary of v2
    headrace rollout set big v2=100         # all of it on v2
    headrace rollout clear big              # the instant rollback: no rollout at all
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from headrace.cli.audit import ConfigOption, cli_actor, console, err_console, load, run_on_db
from headrace.control import rollouts as rollout_service

rollout_app = typer.Typer(
    help="Rollouts: traffic split between a model's versions (canaries, rollback).",
    no_args_is_help=True,
)
ModelArgument = Annotated[str, typer.Argument(help="The model's public name.")]
WeightsArgument = Annotated[
    list[str], typer.Argument(help="VERSION=WEIGHT, one per version, e.g. v1=95 v2=5.")
]


@rollout_app.command("show")
def show(model: ModelArgument, config: ConfigOption = None) -> None:
    """Show the model's rollout and the versions its deployments run."""
    settings = load(config)
    _print(run_on_db(settings, lambda db: rollout_service.get_rollout(db, settings.models, model)))


@rollout_app.command("set")
def set_weights(
    model: ModelArgument, weights: WeightsArgument, config: ConfigOption = None
) -> None:
    """Replace the model's weights: versions left out get no traffic."""
    parsed = _weights(weights)
    settings = load(config)
    actor = cli_actor()
    _print(
        run_on_db(
            settings,
            lambda db: rollout_service.set_rollout(db, settings.models, model, parsed, actor=actor),
        )
    )


@rollout_app.command("clear")
def clear(model: ModelArgument, config: ConfigOption = None) -> None:
    """Drop the model's rollout: every deployment serves again (the instant rollback)."""
    settings = load(config)
    actor = cli_actor()
    _print(
        run_on_db(
            settings,
            lambda db: rollout_service.clear_rollout(db, settings.models, model, actor=actor),
        )
    )


def _weights(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        version, sep, value = item.rpartition("=")
        try:
            if not sep:
                raise ValueError
            out[version.strip()] = float(value)
        except ValueError as exc:
            err_console.print(f"[red]{item!r}: expected VERSION=WEIGHT, e.g. v2=5.[/red]")
            raise typer.Exit(2) from exc
    return out


def _print(found: rollout_service.Rollout) -> None:
    if not found.weights:
        console.print(
            f"{found.model}: no rollout; every deployment serves "
            f"(versions: {', '.join(found.versions) or '(none)'})."
        )
        return
    total = sum(found.weights.values())
    table = Table(title=f"Rollout of {found.model}")
    for column in ("version", "weight", "share"):
        table.add_column(column)
    for version in found.versions:
        weight = found.weights.get(version, 0.0)
        table.add_row(version or '""', f"{weight:g}", f"{100 * weight / total:.1f}%")
    console.print(table)
