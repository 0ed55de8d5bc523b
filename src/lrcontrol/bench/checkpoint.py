"""Checkpoints of runs: written atomically, read without running code.

`save_checkpoint` writes the state to a temporary file, fsyncs it and renames it over the target, so
a crash leaves the old checkpoint or the new one, never half. `load_checkpoint` reads with
`torch.load(weights_only=True)`: only tensors, containers and plain values are unpickled, so a file
whose pickle would call a function (`__reduce__` → `os.system`) is refused, not run. A checkpoint
that is corrupt, not lrcontrol's or another run's raises `BadCheckpointError`; the engine then sets
it aside (`set_aside`: renamed to `<name>.rejected`, with a warning) and starts the run over, or, for
a file the user named (`lrcontrol run --checkpoint`), refuses it.

`fault_point` is the crash tests' hook (LRCONTROL_FAULT="point@marker_file").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lrcontrol.errors import LRControlError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    fault_point("checkpoint-write")
    os.replace(tmp, path)


#: what a checkpoint must hold (everything else it may hold is ignored)
CHECKPOINT_KEYS = ("task", "spec", "seed", "steps", "model", "optimizer", "controller", "rng", "trajectory")


class BadCheckpointError(LRControlError):
    """A checkpoint file that is corrupt, not lrcontrol's, or another run's."""


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read a checkpoint without running code: `weights_only=True` unpickles only tensors, containers
    and plain values (a pickle whose `__reduce__` calls a function is refused, not run)."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise BadCheckpointError(f"checkpoint {path} is not a regular file; give a file path, e.g. runs/sphere.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, … for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadCheckpointError(f"checkpoint {path} is not a readable lrcontrol checkpoint ({first})") from None
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        raise BadCheckpointError(f"checkpoint {path} is not an lrcontrol checkpoint (it lacks the run's state)")
    return state


def set_aside(path: Path, reason: str) -> Path:
    """Rename a bad checkpoint to `<name>.rejected` (kept for inspection) and say so on stderr."""
    import sys

    target = path.with_name(path.name + ".rejected")
    os.replace(path, target)
    sys.stderr.write(f"warning: {reason}; moved it to {target} and started the run over\n")
    return target


def fault_point(name: str) -> None:
    """Crash-test hook: with LRCONTROL_FAULT="name@marker_file", the first process to reach `name`
    creates the marker and kills itself with SIGKILL. Used by the tests to crash at exact points."""
    spec = os.environ.get("LRCONTROL_FAULT")
    if not spec:
        return
    point, _, marker = spec.partition("@")
    if point != name or not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
