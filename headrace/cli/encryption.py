"""`headrace encryption new-key | rotate`: keys for content encrypted at rest.

Rotation: put the new key in `encryption_key` and the old one first in
`encryption_old_keys`, restart the gateways (they seal with the new key and open both),
run `headrace encryption rotate` (it re-seals every stored value with the new key), then
drop the old key. See docs/operations.md.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy import inspect

from headrace.cli.audit import ConfigOption, cli_actor, console, err_console, load, open_db
from headrace.storage import audit
from headrace.storage.encryption import SEALED_COLUMNS, key_id, new_key_text, parse_key, reseal

encryption_app = typer.Typer(help="Encryption at rest of stored content.", no_args_is_help=True)


@encryption_app.command("new-key")
def new_key() -> None:
    """Print a new random key for `encryption_key` (HEADRACE_ENCRYPTION_KEY)."""
    text = new_key_text()
    print(text)
    err_console.print(f"key id {key_id(parse_key(text))}: store it as a secret; it is not saved")


@encryption_app.command("rotate")
def rotate(
    config: ConfigOption = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction.")] = 500,
) -> None:
    """Re-seal every stored value (plaintext or an older key's) with `encryption_key`.
    Safe to stop and run again: it carries on where it left off."""
    settings = load(config)
    cipher = settings.content_cipher()
    if not cipher.enabled:
        err_console.print("[red]encryption_key is not set: nothing to seal with[/red]")
        raise typer.Exit(2)

    async def run() -> dict[str, int]:
        db = await open_db(settings)
        try:
            async with db.engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            counts: dict[str, int] = {}
            for sealed in SEALED_COLUMNS:
                if sealed.table in tables:
                    name = f"{sealed.table}.{sealed.column}"
                    counts[name] = await reseal(db.session, cipher, sealed, batch=batch)
                    console.print(f"{name}: {counts[name]} re-sealed")
            async with db.session.begin() as session:
                await audit.record(
                    session,
                    cli_actor(),
                    "encryption.rotate",
                    audit.Target("encryption_key", cipher.current_key_id or ""),
                    after={"resealed": counts},
                )
            return counts
        finally:
            await db.close()

    counts = asyncio.run(run())
    console.print(
        f"done: {sum(counts.values())} value(s) now sealed with key {cipher.current_key_id}"
    )
