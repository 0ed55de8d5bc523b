"""The spec language: one string names a method, the same in Python, in a sweep file and on the CLI.

    adamw(lr=1e-3, weight_decay=0.01) + warmup(0.05) + cosine() + plateau(patience=3)

Grammar: terms joined by `+`; a term is `name` or `name(args)`; arguments are literals (numbers,
strings, True/False/None, lists or tuples of numbers, {"string": number} mappings), positional in the declared order or by
keyword. An optimizer, if present, comes first. The text is parsed with Python's `ast` and never
evaluated. `str(parse(s))` is canonical — keywords only, declared order, defaults dropped, floats
by `repr` — so `parse(str(parse(s))) == parse(s)` and a stored result names its method exactly.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from lrcontrol.errors import LRControlError, SpecError
from lrcontrol.params import NameMap
from lrcontrol.registry import Entry, lookup

MAX_SPEC_LENGTH = 2000


@dataclass(frozen=True)
class Term:
    """One named optimizer or controller with its non-default arguments (validated)."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def entry(self) -> Entry:
        return lookup(self.name)

    @property
    def kind(self) -> str:
        return self.entry.kind

    def kwargs(self) -> dict[str, Any]:
        """The explicit (non-default) arguments."""
        return dict(self.args)

    def full_kwargs(self) -> dict[str, Any]:
        """Every argument, defaults included."""
        out = {p.name: p.default for p in self.entry.params if not p.required}
        out.update(self.args)
        return out

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={format_value(v)}' for k, v in self.args)})"


@dataclass(frozen=True)
class Spec:
    """A method: an optional optimizer followed by controller terms, multiplied together."""

    terms: tuple[Term, ...]

    @property
    def optimizer(self) -> Term | None:
        return self.terms[0] if self.terms and self.terms[0].kind == "optimizer" else None

    @property
    def factors(self) -> tuple[Term, ...]:
        return self.terms[1:] if self.optimizer is not None else self.terms

    @property
    def whole(self) -> Term | None:
        """The spec's whole-method term (`auto()`: it picks the optimizer and controllers per task), if any;
        such a term always stands alone."""
        return self.terms[0] if len(self.terms) == 1 and self.terms[0].kind == "method" else None

    def __str__(self) -> str:
        return " + ".join(str(t) for t in self.terms)


def format_value(value: Any) -> str:
    if isinstance(value, NameMap):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value) + "}"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(value)


def _literal(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand, where)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_literal(e, where) for e in node.elts)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k, where): _literal(v, where) for k, v in zip(node.keys, node.values)}
    text = ast.unparse(node)
    raise SpecError(
        f"{where}: {text!r} is not a literal; arguments must be numbers, strings, True/False/None "
        "or lists of numbers (write 0.001, not an expression)"
    )


def _flatten_sum(node: ast.AST, text: str) -> list[ast.AST]:
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, ast.Add):
            op = type(node.op).__name__
            raise SpecError(
                f"{text!r}: terms are combined with '+' only (composition is multiplication of factors); "
                f"found the operator {op} in {ast.unparse(node)!r}"
            )
        return _flatten_sum(node.left, text) + _flatten_sum(node.right, text)
    return [node]


def _term(node: ast.AST, text: str) -> Term:
    if isinstance(node, ast.Name):
        name, pos, kws = node.id, [], []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, pos, kws = node.func.id, node.args, node.keywords
    else:
        raise SpecError(
            f"{text!r}: {ast.unparse(node)!r} is not a method; each term is a name like cosine or a call like cosine(min_scale=0.1)"
        )
    entry = lookup(name)
    params = entry.params
    given: dict[str, Any] = {}
    if any(isinstance(a, ast.Starred) for a in pos) or any(k.arg is None for k in kws):
        raise SpecError(f"{name}(…): * and ** arguments are not allowed in a spec")
    if len(pos) > len(params):
        raise SpecError(
            f"{name}() takes at most {len(params)} positional argument(s) ({', '.join(p.name for p in params) or 'none'}), "
            f"got {len(pos)}"
        )
    for p, node_arg in zip(params, pos):
        given[p.name] = _literal(node_arg, f"{name}({p.name}=…)")
    names = {p.name: p for p in params}
    for kw in kws:
        if kw.arg not in names:
            from lrcontrol.params import unknown_argument

            raise SpecError(unknown_argument(name, kw.arg, names, entry.renamed))
        if kw.arg in given:
            raise SpecError(f"{name}() got {kw.arg!r} twice (positionally and by keyword)")
        given[kw.arg] = _literal(kw.value, f"{name}({kw.arg}=…)")
    return make_term(entry, given)


def make_term(entry: Entry, given: dict[str, Any]) -> Term:
    """Validate `given` against `entry` and return the canonical Term (defaults dropped)."""
    args = []
    for p in entry.params:
        if p.name in given:
            value = p.coerce(given[p.name], entry.name)
            if not p.required and not p.show and _same(value, p.default):
                continue
            args.append((p.name, value))
        elif p.show and not p.required:
            args.append((p.name, p.default))
        elif p.required:
            raise SpecError(f"{entry.name}() needs {p.name}: {p.doc} (e.g. {entry.example or entry.name + '(…)'})")
    unknown = set(given) - {p.name for p in entry.params}
    if unknown:
        old = sorted(unknown & set(entry.renamed))
        if old:
            from lrcontrol.params import unknown_argument

            raise SpecError(unknown_argument(entry.name, old[0], [p.name for p in entry.params], entry.renamed))
        raise SpecError(f"{entry.name}() got unknown argument(s) {sorted(unknown)}")
    term = Term(entry.name, tuple(args))
    if entry.kind != "optimizer":
        try:
            entry.factory(**term.kwargs())  # cross-parameter checks raise here, at parse time
        except LRControlError as exc:
            raise SpecError(str(exc)) from None
    return term


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def parse(text: str | Spec) -> Spec:
    """Parse and validate a spec string; raise SpecError naming the offending part."""
    if isinstance(text, Spec):
        return text
    if not isinstance(text, str):
        raise SpecError(f"a spec must be a string like 'adamw(lr=1e-3) + cosine()', got {type(text).__name__}")
    if len(text) > MAX_SPEC_LENGTH:
        raise SpecError(f"spec is {len(text)} characters long; the limit is {MAX_SPEC_LENGTH}")
    stripped = text.strip()
    if not stripped:
        raise SpecError("empty spec; write e.g. 'adamw(lr=1e-3) + cosine()'")
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1) - 1
        raise SpecError(
            f"cannot parse spec {stripped!r}: {exc.msg} at column {col + 1} (near {stripped[max(0, col - 5) : col + 5]!r})"
        ) from None
    terms = [_term(node, stripped) for node in _flatten_sum(tree.body, stripped)]
    whole = [t for t in terms if t.kind == "method"]
    if whole and len(terms) > 1:
        raise SpecError(
            f"{whole[0]} chooses the whole method (optimizer and LR control) per task, so it stands alone: "
            f"write just '{whole[0]}', not {stripped!r}"
        )
    for i, term in enumerate(terms):
        if term.kind == "optimizer" and i > 0:
            raise SpecError(
                f"{term.name}() is an optimizer and must come first (found at position {i + 1} of {stripped!r}); "
                "a spec has at most one optimizer"
            )
    seen: set[str] = set()
    for term in terms:
        if term.name in seen:
            # the factors multiply, so cosine() + cosine() is cosine squared: never what was meant
            raise SpecError(
                f"{term.name}() appears twice in {stripped!r}; a spec takes at most one of each method "
                "(the terms multiply: a second copy applies it twice)"
            )
        seen.add(term.name)
    return Spec(tuple(terms))


def canonical(text: str | Spec) -> str:
    """The canonical form of a spec string."""
    return str(parse(text))


def with_lr(spec: str | Spec, lr: float) -> Spec:
    """The same method with its optimizer's base LR set to `lr` (for LR grids in sweeps)."""
    parsed = parse(spec)
    opt = parsed.optimizer
    if parsed.whole is not None:
        raise SpecError(f"{parsed} chooses its own LR per task, so an LR grid cannot be applied to it; drop the lrs")
    if opt is None:
        raise SpecError(
            f"{parsed}: an LR grid needs a spec that starts with an optimizer, e.g. 'sgd(lr=0.1) + {parsed}'"
        )
    try:
        opt.entry.param("lr")
    except KeyError:
        raise SpecError(f"{opt.name}() has no lr parameter, so an LR grid cannot be applied to it") from None
    given = opt.kwargs()
    given["lr"] = lr
    return Spec((make_term(opt.entry, given), *parsed.factors))
