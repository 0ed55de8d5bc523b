"""Shared pieces of the CLI: the typer app, error handling (exit status 2), JSON output."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from lrcontrol import jsontext
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
# markup=False: strings printed here (table cells, titles, messages) are shown as they are, so a spec
# or a file name with `[/]` in it never reaches rich's markup parser. Styled text goes through `markup`.
console = Console(width=None if sys.stdout.isatty() else 160, markup=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print one line `error: …` to stderr and exit with status 2 (bad input).

    The message is escaped: it quotes what the user typed, and `[/]` in a spec or a file name must
    print as text, not be read as rich markup. Line breaks in quoted input are shown as `\\n`, so the
    message stays one line."""
    one_line = message.replace("\r", "\\r").replace("\n", "\\n")
    err_console.print(markup("[bold red]error:[/] {}", one_line), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def markup(template: str, *values: Any) -> Text:
    """rich Text from our own markup `template`, with each `{}` filled by a value shown literally."""
    return Text.from_markup(template.format(*(escape(str(v)) for v in values)))


def warn(message: str) -> None:
    """Print `warning: …` to stderr (escaped like `fail`)."""
    err_console.print(markup("[yellow]warning:[/] {}", message), highlight=False, soft_wrap=True)


def check_text(value: str, what: str) -> None:
    """Text the user passed that becomes a file name or a record: no NUL bytes (the OS refuses them)."""
    if "\x00" in value:
        fail(f"{what} {value!r} contains a NUL byte; remove it")


def check_new_file(path: Path, option: str) -> None:
    """A file this command will create: its folder must exist, or be creatable (no regular file on the way)."""
    check_text(str(path), option)
    if path.is_dir():
        fail(f"{option} {path} is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{option} {path}: {parent} is a file, not a folder; choose another path")
            break


def check_output(path: Path, option: str, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """An output file (export, plot, report): checked before any work, so nothing is overwritten by mistake.

    Refused always: the output is one of the command's inputs (the same file, by any path), an
    lrcontrol store or another SQLite database, a store's side files, or not a regular file (a
    device, a FIFO). An existing regular file is replaced only with --force. The folder must exist.
    """
    check_text(str(path), option)
    if path.is_dir():
        fail(f"{option} {path} is a directory; give a file path")
    if not path.parent.is_dir():
        fail(f"{option} {path}: the folder {path.parent} does not exist; create it first")
    for source in inputs:
        if _same_file(path, source) or path.name in (source.name + s for s in ("-wal", "-shm", "-journal")):
            fail(f"{option} {path} is the input {source}; writing there would destroy it — choose another path")
    if not path.exists():
        return
    if not path.is_file():
        fail(f"{option} {path} exists and is not a regular file; choose another path")
    try:
        with open(path, "rb") as fh:
            is_sqlite = fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        is_sqlite = False
    if is_sqlite:
        fail(f"{option} {path} is an SQLite database (a store?); it is never overwritten — choose another path")
    if not force:
        fail(f"{option} {path} already exists; pass --force to replace it, or choose another path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def handles_errors(fn: F) -> F:
    """Turn lrcontrol's input errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LRControlError as exc:
            fail(str(exc))
        except (OSError, sqlite3.OperationalError) as exc:
            # a full disk is the user's to fix, not a bug: one line (the store's transaction rolled back)
            if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in str(exc):
                fail(f"the disk is full ({exc}); free some space, then run the same command again")
            raise

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Strict JSON on stdout: a diverged run's infinite loss is the string "Infinity", never a bare token."""
    sys.stdout.write(jsontext.dumps(data, indent=2, default=str) + "\n")
