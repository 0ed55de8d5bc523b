"""The arguments of `lrcontrol run`, `sweep`, `tune` and `select build` checked before anything is
written: store paths, counts, seeds, the crash-test hook and Dask scheduler addresses."""

from __future__ import annotations

import os
from pathlib import Path

from lrcontrol.cli.common import check_new_file, fail
from lrcontrol.limits import MAX_SEED


def _check_new_store_path(store: Path) -> None:
    """A store this command may create or add to: checked before any file or folder is made."""
    from lrcontrol.bench.store import check_store_file  # here, not at import: the CLI starts without torch

    check_new_file(store, "--store")
    if store.exists():
        check_store_file(store)


def _check_positive(value: int | None, name: str, limit: int | None = None, why: str = "") -> None:
    if value is not None and value < 1:
        fail(f"{name} must be ≥ 1, got {value}")
    if value is not None and limit is not None and value > limit:
        fail(f"{name} {value} is over the limit of {limit}{why}")


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        fail(f"--seed must be in [0, 2**63 - 1] (the store keeps seeds as 64-bit integers), got {seed}")


def _check_fault_hook() -> None:
    """LRCONTROL_FAULT (the crash tests' hook) must be `point@marker` with an existing folder, or unset."""
    spec = os.environ.get("LRCONTROL_FAULT")
    if not spec:
        return
    point, _, marker = spec.partition("@")
    if not point or not marker or not Path(marker).parent.is_dir():
        fail(
            f"LRCONTROL_FAULT={spec!r} is not 'point@marker_file' with an existing folder "
            "(it is a test hook); unset it, e.g. `unset LRCONTROL_FAULT`"
        )


def _check_scheduler(address: str) -> None:
    """A Dask scheduler address, parsed as distributed parses it (before the store is touched)."""
    example = "expected e.g. tcp://127.0.0.1:8786"
    if "://" not in address:
        fail(f"--scheduler {address!r} is not an address; {example}")
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import backends
    except ImportError:
        fail("--scheduler needs distributed: pip install 'lrcontrol[bench]'")
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown address scheme {scheme!r} (known: {', '.join(sorted(backends))})")
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, _ = parse_host_port(location)
            if not host:
                raise ValueError("no host")
    except ValueError as exc:
        fail(f"--scheduler {address!r} is not a usable address ({exc}); {example}")
