"""How a method is registered: the `Entry` a spec name stands for, and the decorators that add one.

A leaf module (it imports no controller or optimizer): the modules that define methods import it to
register themselves, and `lrcontrol.registry` — which looks names up and lists them — imports those
modules. So registering never depends on the registry having loaded, and there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lrcontrol.params import NameMap, Param

#: "method": a whole method that picks its optimizer and controllers itself (auto()); a spec holds it alone
KINDS = ("optimizer", "groups", "gradient", "schedule", "reactive", "online", "finder", "method")


@dataclass(frozen=True)
class Entry:
    """A registered name.

    factory: for an optimizer, `factory(params, **kwargs) -> torch.optim.Optimizer`; for a
    controller, the Factor class, called as `factory(**kwargs)`.
    example: a spec fragment the docs and the conformance suite use (defaults to `name()`).
    optimizer: for a controller that only works on some optimizers, the spec of one it works on
    (the conformance suite uses it instead of SGD).
    """

    name: str
    kind: str
    factory: Callable[..., Any]
    params: tuple[Param, ...]
    summary: str
    example: str = ""
    optimizer: str = ""
    #: every spec fragment the conformance suite runs (lrcontrol.testing): `example` first, then the
    #: class's `examples` (options the first example leaves off); at least two per entry
    examples: tuple[str, ...] = ()
    one_lr: bool = False
    #: old parameter names → today's, for the error that names the new one (`Factor.renamed`)
    renamed: dict[str, str] = field(default_factory=dict, hash=False)
    #: for an entry whose result depends on content outside the spec (a file it reads: a policy, a
    #: selector): `identity(args)` names that content — `args` are the term's arguments, defaults
    #: included — as a short string such as "policy:<digest>". The run key (`bench.record.run_key`)
    #: appends it, so a run under new content never reuses a stored run of the old; None: the spec alone
    #: identifies the result
    identity: Callable[[dict[str, Any]], str] | None = field(default=None, hash=False, compare=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "example": self.example or f"{self.name}()",
            "params": [
                {
                    "name": p.name,
                    "type": p.type,
                    "default": None if p.required else _jsonable(p.default),
                    "required": p.required,
                    "range": p.describe_range(),
                    "doc": p.doc,
                }
                for p in self.params
            ],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, NameMap):
        return value.as_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


REGISTRY: dict[str, Entry] = {}


def _summary(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def register(entry: Entry) -> Entry:
    if entry.kind not in KINDS:
        raise ValueError(f"unknown kind {entry.kind!r} for {entry.name}")
    if entry.name in REGISTRY and REGISTRY[entry.name].factory is not entry.factory:
        raise ValueError(f"{entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


def register_factor(cls: type) -> type:
    """Class decorator: register a Factor subclass under `cls.name` with `cls.params`."""
    register(
        Entry(
            name=cls.name,
            kind=cls.kind,
            factory=cls,
            params=tuple(cls.params),
            summary=_summary(cls),
            example=getattr(cls, "example", "") or next(iter(getattr(cls, "examples", ())), ""),
            optimizer=getattr(cls, "example_optimizer", ""),
            examples=tuple(dict.fromkeys(x for x in (getattr(cls, "example", ""), *getattr(cls, "examples", ())) if x)),
            renamed=dict(getattr(cls, "renamed", {})),
            identity=getattr(cls, "content_identity", None),
        )
    )
    return cls


def register_optimizer(
    name: str,
    params: tuple[Param, ...],
    summary: str,
    example: str = "",
    examples: tuple[str, ...] = (),
    one_lr: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator: register `factory(params, **kwargs) -> Optimizer` under `name`.

    examples: specs the conformance suite runs (at least two); one_lr: the optimizer needs the same LR
    in every param group (D-Adaptation, Prodigy)."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        entry = Entry(name, "optimizer", factory, params, summary, example, examples=examples, one_lr=one_lr)
        register(entry)
        return factory

    return deco
