"""The selector the package ships: it loads on an install without the meta-dataset, its members are the
portfolio's, the wheel carries it, and docs/auto.md's example runs with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import torch

from lrcontrol.select.portfolio import PORTFOLIO
from lrcontrol.select.shipped import ENV, read, shipped_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_selector_loads_without_the_meta_dataset(tmp_path):
    # An audit hook sees every file Python opens: loading and choosing must not touch metadata/ (nor pandas,
    # scikit-learn or the meta-dataset module), run from a folder that has no metadata/ at all.
    code = """
import math, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" and args else None)
from lrcontrol.select.auto import load, select
loaded = load()
member, spec, why = select({name: 0.0 for name in loaded.file.features})
read = [p for p in opened if p.endswith(".parquet") or "/metadata/" in p.replace("importlib/metadata", "")]
assert not read, read
for module in ("pandas", "sklearn", "lrcontrol.select.metadata"):
    assert module not in sys.modules, module
print(loaded.file.kind, member)
"""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    kind, member = done.stdout.split()
    assert kind == read().kind and member in read().members


def test_the_shipped_selector_chooses_among_the_portfolio_and_records_its_training():
    shipped = read(shipped_path())
    assert set(shipped.members) <= set(PORTFOLIO)
    assert all(shipped.members[m] == PORTFOLIO[m] for m in shipped.members)
    provenance = shipped.provenance
    assert provenance["instances"] >= 100 and len(provenance["families"]) == 5
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["runs_sha256"])


def test_the_shipped_selector_was_trained_on_the_shipped_meta_dataset_and_can_choose_the_learned_member():
    """The member added last (adamw-learned, one run like most members) is in the meta-dataset the
    selector was trained on, and the selector chooses among it too."""
    import hashlib

    shipped = read(shipped_path())
    runs = ROOT / "metadata" / "runs.parquet"
    assert shipped.provenance["runs_sha256"] == hashlib.sha256(runs.read_bytes()).hexdigest()
    assert "adamw-learned" in shipped.members and "adamw-learned" in PORTFOLIO


def test_the_wheel_carries_the_selector_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lrcontrol.select"]
    relative = shipped_path().relative_to(ROOT / "src" / "lrcontrol" / "select").as_posix()
    assert any(fnmatch(relative, p) for p in patterns)


def test_the_example_in_docs_auto_md_runs():
    docs = ROOT / "docs" / "auto.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 1, "docs/auto.md lost its example"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for block in blocks:
            exec(compile(block, str(docs), "exec"), {})  # the example asserts what it shows
    finally:
        torch.set_num_threads(threads)
