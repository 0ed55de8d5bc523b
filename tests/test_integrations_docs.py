"""docs/integrations.md's recipes run, and assert what they show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_page_keeps_its_recipes():
    assert len(BLOCKS) == 5, "docs/integrations.md's recipes changed; update this test"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_recipe_runs(index):
    for module in ("pytorch_lightning", "transformers", "tensorboard"):
        if f"import {module}" in BLOCKS[index] or f"from {module}" in BLOCKS[index]:
            pytest.importorskip(module)
    exec(compile(BLOCKS[index], f"{DOCS}:block{index}", "exec"), {})
