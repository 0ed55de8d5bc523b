"""A reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Written here rather than imported because the only packages that read IDX (torchvision,
python-mnist…) pull in far more than this 30-line format needs.

Layout (big-endian): two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B short,
0x0C int, 0x0D float, 0x0E double), the number of dimensions n, then n 32-bit sizes, then the data.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from lrcontrol.errors import LRControlError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into an array of the stored shape and type (native byte order)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise LRControlError(f"{source} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LRControlError(f"{source} is truncated inside its IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise LRControlError(f"{source} holds {len(raw) - header} data bytes, but its header {shape} needs {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file; a name ending in .gz is decompressed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise LRControlError(f"cannot read IDX file {path}: {exc}") from exc
    return parse_idx(raw, str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` as IDX (gzip-compressed when the name ends in .gz); used by tests and caches."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
    native = np.dtype(array.dtype).newbyteorder("=")
    if native not in codes:
        raise LRControlError(f"IDX cannot store dtype {array.dtype}")
    big_endian = np.dtype(_TYPES[codes[native]])
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=big_endian).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)
