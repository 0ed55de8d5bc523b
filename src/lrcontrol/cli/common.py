"""Shared pieces of the CLI: the typer app, error handling (exit status 2), JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from lrcontrol.errors import LRControlError

app = typer.Typer(
    name="lrcontrol",
    help="Learning-rate control for PyTorch: methods, LR range tests, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Piped or logged output (make bench > log) gets a wide page instead of rich's 80-column default,
# so the summary tables keep whole method specs; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print one line `error: …` to stderr and exit with status 2 (bad input)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def handles_errors(fn: F) -> F:
    """Turn lrcontrol's input errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LRControlError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
