"""One registry of everything a spec can name: optimizers and controllers (factors).

`lrcontrol methods` lists it, the spec language looks names up in it, and the conformance test
suite runs over every controller in it — registering a controller is all it takes to be covered.
Methods register themselves with `lrcontrol.registration` when their module is imported; the
look-ups here import those modules first (once, on first use, so that `import lrcontrol` and the
command line stay cheap).
"""

from __future__ import annotations

import importlib
import pkgutil

from lrcontrol.errors import SpecError
from lrcontrol.params import closest_hint
from lrcontrol.registration import KINDS, REGISTRY, Entry, register, register_factor, register_optimizer

__all__ = ["KINDS", "REGISTRY", "Entry", "entries", "lookup", "register", "register_factor", "register_optimizer"]


def lookup(name: str) -> Entry:
    """The entry called `name`, or a SpecError listing the valid names and the closest match."""
    _load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        pass
    optimizers = sorted(n for n, e in REGISTRY.items() if e.kind == "optimizer")
    controllers = sorted(n for n, e in REGISTRY.items() if e.kind != "optimizer")
    raise SpecError(
        f"unknown method {name!r}{closest_hint(name, REGISTRY)}; "
        f"optimizers: {', '.join(optimizers)}; controllers: {', '.join(controllers)}"
    )


def entries(kind: str | None = None) -> list[Entry]:
    """Every registered entry (of one kind), sorted by kind then name."""
    _load_all()
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(
        (e for e in REGISTRY.values() if kind is None or e.kind == kind),
        key=lambda e: (order[e.kind], e.name),
    )


_loaded = False


def _load_all() -> None:
    """Import every module of `lrcontrol.control` and `lrcontrol.optim` (once): each registers its methods.

    Discovery by package contents, not an import list: a new method module is found without editing
    anything else, and no method module is imported by name here (they depend on
    `lrcontrol.registration`, never on this module)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in ("lrcontrol.control", "lrcontrol.optim"):
        path = importlib.import_module(package).__path__
        for info in pkgutil.iter_modules(path):
            importlib.import_module(f"{package}.{info.name}")
    # Whole methods (auto()) live with algorithm selection; their entry module is a leaf like the others.
    importlib.import_module("lrcontrol.select.method")
