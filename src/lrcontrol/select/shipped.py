"""The selector file: what `auto()` reads to choose a portfolio member, as plain, version-stable JSON.

    {"format": "lrcontrol-selector", "version": 1, "lrcontrol_version": "0.3.0", "kind": "knn",
     "features": ["log_params", …],            # the feature names, in the order the selector reads them
     "members": {"adamw-cosine": "adamw(lr=0.001) + warmup(steps=0.05) + cosine()", …},
     "selector": {…},                           # the selector's to_dict(): numbers and lists only
     "provenance": {"runs_sha256": …, "features_sha256": …, "instances": 312, "families": […], …}}

No pickle: a file is read with `json` and validated field by field, so a foreign or corrupt file fails with
one line naming what is wrong, and loading never runs code. The package ships one, built by
`lrcontrol select train` from the meta-dataset (`select/data/selector.json`); loading it never reads the
meta-dataset. $LRCONTROL_SELECTOR names another file to use instead (one you trained). `SelectorFile.identity` (a hash of the file's content) goes into the run key of every
`auto()` run, so a new selector never reuses the stored results of an old one.

This module reads and checks the envelope only; turning `selector` into a working selector is
`lrcontrol.select.auto`'s job (it imports the selector classes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lrcontrol.errors import LRControlError

FORMAT = "lrcontrol-selector"
#: the newest format this lrcontrol reads; a file of a newer one needs a newer lrcontrol
VERSION = 1
KINDS = ("knn", "pairwise", "regression", "single-best")
#: the longest selector file read (a kNN selector over a few hundred instances is a few hundred KB)
MAX_BYTES = 32 * 1024 * 1024


class SelectorFileError(LRControlError):
    """A selector file that is missing, corrupt, foreign, or names something this lrcontrol does not know."""


@dataclass(frozen=True)
class SelectorFile:
    """A validated selector file (see the module docstring); `identity` names its content."""

    path: str
    kind: str
    features: tuple[str, ...]
    members: dict[str, str]  # member name -> canonical spec
    selector: dict[str, Any]
    provenance: dict[str, Any]
    lrcontrol_version: str
    identity: str

    def to_dict(self) -> dict[str, Any]:
        """The file's content (what `write` stores)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "lrcontrol_version": self.lrcontrol_version,
            "kind": self.kind,
            "features": list(self.features),
            "members": dict(self.members),
            "selector": self.selector,
            "provenance": self.provenance,
        }


def shipped_path() -> Path:
    """Where the package's own selector file lives (it may be absent in a build without one)."""
    return Path(__file__).resolve().parent / "data" / "selector.json"


#: an environment variable naming a selector file that replaces the shipped one (for auto() in runs and sweeps)
ENV = "LRCONTROL_SELECTOR"


def default_path() -> Path:
    """The selector `auto()` uses when given none: $LRCONTROL_SELECTOR if set, else the shipped file."""
    override = os.environ.get(ENV)
    return Path(override) if override else shipped_path()


def read(path: str | Path | None = None) -> SelectorFile:
    """Read and validate a selector file (default: `default_path()`); SelectorFileError names the problem."""
    path = default_path() if path is None else Path(path)
    try:
        stat = path.stat()
    except OSError:
        if path == shipped_path():
            raise SelectorFileError(
                f"this lrcontrol ships no selector ({path} is missing); train one with `lrcontrol select train "
                f"--out FILE` and name it in ${ENV} (or pass selector=FILE to lrcontrol.auto)"
            ) from None
        named = f" (from ${ENV})" if os.environ.get(ENV) == str(path) else ""
        raise SelectorFileError(
            f"selector file {path}{named} does not exist; give the file `lrcontrol select train` wrote"
        ) from None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> SelectorFile:
    if size > MAX_BYTES:
        raise SelectorFileError(f"selector file {path} is {size} bytes, over the limit of {MAX_BYTES}; is it one?")
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SelectorFileError(f"selector file {path} is not readable JSON ({first})") from None
    return validate(data, path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validate(data: Any, where: str) -> SelectorFile:
    """The SelectorFile of `data` (a parsed selector file), or SelectorFileError naming the bad field."""
    from lrcontrol.spec import parse

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SelectorFileError(
            f'{where} is not an lrcontrol selector file (no "format": "{FORMAT}"); build one with '
            "`lrcontrol select train`"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SelectorFileError(f'{where}: "version" must be a positive whole number, got {version!r}')
    if version > VERSION:
        raise SelectorFileError(
            f"{where} is a version {version} selector file; this lrcontrol reads version {VERSION} at most: upgrade "
            "lrcontrol, or retrain the selector with this one (`lrcontrol select train`)"
        )
    missing = [k for k in ("kind", "features", "members", "selector", "provenance") if k not in data]
    if missing:
        raise SelectorFileError(f"{where}: the selector file lacks {', '.join(missing)}; retrain it")
    kind = data["kind"]
    if kind not in KINDS:
        raise SelectorFileError(f"{where}: unknown selector kind {kind!r}; known: {', '.join(KINDS)}")
    features = data["features"]
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) and f for f in features)
        or len(set(features)) != len(features)
    ):
        raise SelectorFileError(f'{where}: "features" must be a non-empty list of distinct feature names')
    members = data["members"]
    if not isinstance(members, dict) or not members:
        raise SelectorFileError(f'{where}: "members" must map each portfolio member\'s name to its spec')
    canonical = {}
    for name, spec in members.items():
        if not isinstance(spec, str):
            raise SelectorFileError(f"{where}: member {name!r} has no spec string")
        try:
            parsed = parse(spec)
        except LRControlError as exc:
            raise SelectorFileError(f"{where}: member {name!r} has a spec this lrcontrol cannot run: {exc}") from None
        if parsed.optimizer is None:
            raise SelectorFileError(f"{where}: member {name!r}'s spec {spec!r} names no optimizer")
        canonical[name] = str(parsed)
    if not isinstance(data["selector"], dict) or not isinstance(data["provenance"], dict):
        raise SelectorFileError(f'{where}: "selector" and "provenance" must be JSON objects')
    _check_numbers(data["selector"], where)
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return SelectorFile(
        path=str(where),
        kind=kind,
        features=tuple(features),
        members=canonical,
        selector=data["selector"],
        provenance=data["provenance"],
        lrcontrol_version=str(data.get("lrcontrol_version", "")),
        identity=hashlib.sha256(body.encode()).hexdigest()[:16],
    )


def _check_numbers(value: Any, where: str) -> None:
    """Plain JSON values only (no NaN or infinity, which strict JSON cannot hold)."""
    if isinstance(value, dict):
        for v in value.values():
            _check_numbers(v, where)
    elif isinstance(value, list):
        for v in value:
            _check_numbers(v, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SelectorFileError(f"{where}: the selector holds a non-finite number; retrain it")


def identity(path: str | Path | None = None) -> str:
    """The content hash of a selector file (default: `default_path()`): part of every auto() run's key."""
    return read(path).identity


def write(path: str | Path, content: dict[str, Any], *, force: bool = False) -> SelectorFile:
    """Validate `content` (a selector file's dict) and write it to `path` atomically; refuse to overwrite
    an existing file unless `force`. Returns what a reader will see."""
    path = Path(path)
    checked = validate(content, str(path))
    if path.exists() and not force:
        raise SelectorFileError(f"{path} exists; pass --force to overwrite it, or choose another --out")
    # one top-level field per line, each value compact: readable headers, arrays that do not take a line a number
    fields = [
        f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), allow_nan=False)}"
        for k, v in checked.to_dict().items()
    ]
    text = "{\n" + ",\n".join(fields) + "\n}\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return read(path)
