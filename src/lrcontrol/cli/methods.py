"""`lrcontrol methods` and `lrcontrol spec`: what can be named, and what a spec means."""

from __future__ import annotations

import typer
from rich.table import Table

from lrcontrol.cli.common import app, console, fail, handles_errors, print_json
from lrcontrol.registry import KINDS, entries
from lrcontrol.spec import parse


@app.command("methods")
@handles_errors
def methods_cmd(
    kind: str = typer.Option(None, "--kind", help=f"only this kind: {', '.join(KINDS)}"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List every optimizer and controller a spec can name, with parameters and defaults.

    Examples:

        lrcontrol methods

        lrcontrol methods --kind schedule --json
    """
    if kind is not None and kind not in KINDS:
        fail(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    found = entries(kind)
    if as_json:
        print_json([e.to_json() for e in found])
        return
    table = Table(title="lrcontrol methods", show_lines=False)
    table.add_column("name", style="bold cyan")
    table.add_column("kind")
    table.add_column("parameters (defaults)")
    table.add_column("description")
    for e in found:
        params = ", ".join(f"{p.name}" + ("" if p.required else f"={p.default!r}") for p in e.params)
        table.add_row(e.name, e.kind, params, e.summary)
    console.print(table)


@app.command("spec")
@handles_errors
def spec_cmd(
    text: str = typer.Argument(..., help="a method spec"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Check a method spec and print its canonical form (exit status 2 if it is invalid).

    Example:

        lrcontrol spec "adamw(lr=1e-3) + warmup(0.05) + cosine()"
    """
    spec = parse(text)
    if as_json:
        print_json(
            {
                "canonical": str(spec),
                "terms": [{"name": t.name, "kind": t.kind, "args": t.full_kwargs()} for t in spec.terms],
            }
        )
    else:
        console.print(str(spec), highlight=False)
