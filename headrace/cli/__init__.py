"""The `headrace` command line: thin typer commands over control/ and friends."""
