"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv 1708.07747): 70 000 28×28 grey images, 10 classes.

Looked up in the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), then in
`<cache>/fashion-mnist`, then downloaded from the authors' address into the cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrcontrol.data.cache import cache_dir, download, find_file
from lrcontrol.data.idx import read_idx
from lrcontrol.errors import LRControlError

SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist` (or put the four .gz IDX files in the cache)"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class ImageData:
    """uint8 images (n, 28, 28) and int64 labels, as published: 60 000 train, 10 000 test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def locate(
    system_dirs: tuple[Path, ...] = SYSTEM_DIRS, cache: Path | None = None, download_ok: bool | None = None
) -> dict[str, Path]:
    """The path of each of the four files, downloading the missing ones into the cache if allowed."""
    cache = (cache or cache_dir()) / "fashion-mnist"
    found: dict[str, Path] = {}
    for key, name in FILES.items():
        path = find_file(name, [*system_dirs, cache])
        if path is None:
            path = download(
                URL + name,
                cache / name,
                what=f"Fashion-MNIST ({name})",
                install_hint=INSTALL_HINT,
                download_ok=download_ok,
            )
        found[key] = path
    return found


def load(
    system_dirs: tuple[Path, ...] = SYSTEM_DIRS, cache: Path | None = None, download_ok: bool | None = None
) -> ImageData:
    """Fashion-MNIST as arrays (see `locate` for where it is looked up)."""
    paths = locate(system_dirs, cache, download_ok)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise LRControlError(f"Fashion-MNIST {split} files disagree: images {images.shape}, labels {labels.shape}")
    return ImageData(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
    )


@functools.lru_cache(maxsize=1)
def load_cached() -> ImageData:
    """`load()` once per process (the run engine builds the task once per run)."""
    return load()
