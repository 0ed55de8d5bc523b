"""Where data sets are found: installed packages first, then a cache directory, then a download.

The cache directory is `$LRCONTROL_DATA` if set, else `~/.cache/lrcontrol`. Downloads use urllib
with the data set's real address; `LRCONTROL_OFFLINE=1` forbids them (the tests set it), and a
failed or forbidden download raises `DataUnavailable`, whose message says what to install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from lrcontrol.errors import LRControlError

DOWNLOAD_TIMEOUT_S = 60


class DataUnavailable(LRControlError):
    """A data set that is neither installed, nor cached, nor downloadable right now."""


def cache_dir() -> Path:
    """The cache directory: `$LRCONTROL_DATA`, else `~/.cache/lrcontrol` (not created here)."""
    configured = os.environ.get("LRCONTROL_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lrcontrol"


def downloads_allowed() -> bool:
    return os.environ.get("LRCONTROL_OFFLINE", "").strip().lower() in ("", "0", "false", "no")


def find_file(name: str, directories: list[Path]) -> Path | None:
    """The first `directory/name` that exists, or None."""
    for directory in directories:
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    return None


def download(url: str, destination: Path, *, what: str, install_hint: str, download_ok: bool | None = None) -> Path:
    """Fetch `url` to `destination` atomically (a partial download never looks complete).

    Raises DataUnavailable naming `what` is missing and `install_hint` when downloads are switched off
    or the fetch fails.
    """
    if download_ok is None:
        download_ok = downloads_allowed()
    searched = f"not installed and not in the cache {destination.parent}"
    if not download_ok:
        raise DataUnavailable(f"{what} is {searched}, and downloads are off (LRCONTROL_OFFLINE); {install_hint}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
        os.replace(partial, destination)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        Path(partial).unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataUnavailable(f"{what} is {searched}, and downloading {url} failed ({reason}); {install_hint}") from exc
    return destination
