"""Imports a newcomer can follow: no cycles among the package's modules, every module importable on
its own in a fresh interpreter, and a command line that starts without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lrcontrol

PACKAGE = Path(lrcontrol.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1] == "__main__":
            continue  # running it starts the command line
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (top level or inside functions;
    not in `if TYPE_CHECKING:` blocks, which never run).

    `from a.b import c` counts as an import of `a.b.c` if that is a module, else of `a.b`."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for block in ast.walk(tree):  # imports for type checkers only never run
            if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING":
                block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    edges.add(sub if sub in modules else base)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, …, a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph(MODULES))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
    return module, done.returncode, done.stderr[-2000:]


def test_every_module_imports_alone_in_a_fresh_interpreter():
    assert len(MODULES) > 40
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        failed = [(m, err) for m, rc, err in pool.map(_import_alone, sorted(MODULES)) if rc != 0]
    assert not failed, "\n\n".join(f"import {m} failed:\n{err}" for m, err in failed)


def _modules_loaded_by(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return set(done.stdout.split())


def test_import_lrcontrol_loads_the_core_only():
    loaded = _modules_loaded_by("import lrcontrol")
    assert "torch" not in loaded
    assert {m for m in loaded if m.startswith("lrcontrol")} == {"lrcontrol"}


@pytest.mark.parametrize("args", [["--help"], ["tasks", "--help"], ["sweep", "--help"], ["methods", "--json"]])
def test_the_command_line_starts_without_torch(args):
    code = f"""
import sys
from lrcontrol.cli import main
sys.argv = ["lrcontrol", *{args!r}]
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    loaded = _modules_loaded_by(code)
    if args[0] == "methods":  # listing the methods imports them, and they are torch code
        assert "lrcontrol.control.clara" in loaded
        return
    assert "torch" not in loaded, f"lrcontrol {' '.join(args)} imported torch"


def test_control_is_both_the_function_and_the_package():
    import torch

    import lrcontrol.control.schedules

    assert lrcontrol.control.schedules.Cosine.name == "cosine"
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    controller = lrcontrol.control(optimizer, "cosine()", total_steps=4)
    assert controller.lrs == [0.1]
