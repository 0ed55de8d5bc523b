"""Output files of report, plot and export: checked before anything is written, written atomically.

An output may never be the store it reads (or the store's SQLite side files), nor any other input: a
typo such as `lrcontrol report results.db -o results.db` fails with one line and touches nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from lrcontrol.errors import LRControlError

#: files SQLite keeps beside a store in WAL mode
SIDE_FILES = ("-wal", "-shm", "-journal")


def _protected(inputs: Iterable[str | Path]) -> set[Path]:
    paths = set()
    for item in inputs:
        path = Path(item).resolve()
        paths.add(path)
        paths.update(path.with_name(path.name + side) for side in SIDE_FILES)
    return paths


def check_output(output: str | Path, inputs: Iterable[str | Path], suffixes: Sequence[str]) -> Path:
    """The output path, after checking that it can be written and would overwrite no input."""
    path = Path(output)
    if path.resolve() in _protected(inputs):
        raise LRControlError(
            f"output {path} is an input of this command; choose another file, e.g. report{suffixes[0]}"
        )
    if path.suffix.lower() not in suffixes:
        raise LRControlError(f"output {path} must end in {' or '.join(suffixes)}, e.g. report{suffixes[0]}")
    if path.is_dir():
        raise LRControlError(f"output {path} is a directory; give a file path, e.g. {path / ('report' + suffixes[0])}")
    if not path.parent.exists():
        raise LRControlError(f"output {path}: the directory {path.parent} does not exist")
    return path


def write_atomic(path: Path, content: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see the old file or the whole new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared report from its readers
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
