"""Search spaces in the spec language: a parameter takes a range instead of a value.

    adamw(lr=loguniform(1e-5, 1)) + sgdr(period=intrange(1, 50), mult=intrange(1, 5), min_scale=uniform(0, 1))

Ranges: `uniform(low, high)`, `loguniform(low, high)` (low > 0), `intrange(low, high)`,
`logintrange(low, high)` (low ≥ 1), `choice(a, b, …)`. The text is parsed with `ast` like every spec and
never evaluated; every other argument is a literal, validated by the method's declared parameters. A
range is checked before anything runs: it must be non-empty, positive for a log scale, on a parameter
that takes numbers (a bool, a string or a list cannot take `uniform`), of the parameter's type (an
integer parameter takes `intrange`), and inside the parameter's declared bounds. `str(space)` is
canonical, so a tuned method is named exactly; `space.configspace()` is the ConfigSpace space SMAC3
samples, and `space.spec(config)` turns a sampled configuration back into a concrete spec.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from lrcontrol.errors import SpecError
from lrcontrol.params import Param, closest_hint, unknown_argument
from lrcontrol.spec import MAX_SPEC_LENGTH, Spec, _flatten_sum, _literal, format_value, make_term

RANGES = ("uniform", "loguniform", "intrange", "logintrange", "choice")


@dataclass(frozen=True)
class Range:
    """One tuned parameter: `kind` is one of RANGES; `values` are (low, high) or the choices."""

    kind: str
    values: tuple[Any, ...]

    @property
    def log(self) -> bool:
        return self.kind in ("loguniform", "logintrange")

    @property
    def integer(self) -> bool:
        return self.kind in ("intrange", "logintrange")

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(format_value(v) for v in self.values)})"


@dataclass(frozen=True)
class SpaceTerm:
    name: str
    fixed: tuple[tuple[str, Any], ...]
    ranges: tuple[tuple[str, Range], ...]

    def __str__(self) -> str:
        entry = _entry(self.name)
        given = dict(self.fixed) | dict(self.ranges)
        parts = [
            f"{p.name}={given[p.name]}"
            if isinstance(given[p.name], Range)
            else f"{p.name}={format_value(given[p.name])}"
            for p in entry.params
            if p.name in given
        ]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class SearchSpace:
    """A spec with ranges. Hyperparameter names are `term.param` (`2:term.param` for a repeated term)."""

    terms: tuple[SpaceTerm, ...]

    def __str__(self) -> str:
        return " + ".join(str(t) for t in self.terms)

    def hyperparameters(self) -> list[tuple[str, int, str, Range]]:
        """(hyperparameter name, term index, parameter, range) in spec order."""
        counts: dict[str, int] = {}
        for term in self.terms:
            counts[term.name] = counts.get(term.name, 0) + 1
        out = []
        for index, term in enumerate(self.terms):
            prefix = term.name if counts[term.name] == 1 else f"{index + 1}:{term.name}"
            out.extend((f"{prefix}.{param}", index, param, rng) for param, rng in term.ranges)
        return out

    def configspace(self, seed: int = 0, prior: dict[str, tuple[float, float]] | None = None) -> Any:
        """The ConfigSpace space. `prior` maps a hyperparameter name to (centre, spread): a normal prior,
        in log₁₀ space for a log-scale range (spread in decades), for SMAC3's prior-guided acquisition."""
        from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer, Normal

        space = ConfigurationSpace(seed=seed)
        prior = prior or {}
        for name, _, _, rng in self.hyperparameters():
            if rng.kind == "choice":
                space.add(Categorical(name, list(rng.values), ordered=False))
                continue
            low, high = rng.values
            factory = Integer if rng.integer else Float
            if name in prior:
                centre, spread = prior[name]
                # ConfigSpace reads mu and sigma of a log-scale normal in the parameter's own units and
                # takes their logs: a spread of s decades is sigma = 10**s (SMAC3's priors example).
                centre = min(max(centre, low), high)
                distribution = Normal(mu=centre, sigma=10**spread if rng.log else spread)
                space.add(factory(name, (low, high), log=rng.log, distribution=distribution, default=centre))
            else:
                space.add(factory(name, (low, high), log=rng.log))
        return space

    def spec(self, config: Any) -> Spec:
        """The concrete, validated spec of a sampled configuration (a mapping name → value)."""
        values = dict(config)
        terms = []
        for index, term in enumerate(self.terms):
            given = dict(term.fixed)
            for name, term_index, param, rng in self.hyperparameters():
                if term_index == index:
                    value = values[name]
                    given[param] = int(value) if rng.integer else (value if rng.kind == "choice" else float(value))
            terms.append(make_term(_entry(term.name), given))
        return Spec(tuple(terms))


def _entry(name: str) -> Any:
    from lrcontrol.registry import lookup

    return lookup(name)


def parse_space(text: str) -> SearchSpace:
    """Parse and check a search space; raise SpecError naming the offending range and the fix."""
    if isinstance(text, SearchSpace):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SpecError("empty search space; write e.g. 'adamw(lr=loguniform(1e-5, 1)) + cosine()'")
    if len(text) > MAX_SPEC_LENGTH:
        raise SpecError(f"search space is {len(text)} characters long; the limit is {MAX_SPEC_LENGTH}")
    stripped = text.strip()
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"cannot parse search space {stripped!r}: {exc.msg} at column {exc.offset}") from None
    terms = tuple(_space_term(node, stripped) for node in _flatten_sum(tree.body, stripped))
    space = SearchSpace(terms)
    if not space.hyperparameters():
        raise SpecError(
            f"{stripped!r} has no range to tune; give a parameter a range, e.g. adamw(lr=loguniform(1e-5, 1))"
        )
    for index, term in enumerate(terms):
        if _entry(term.name).kind == "optimizer" and index > 0:
            raise SpecError(f"{term.name}() is an optimizer and must come first in {stripped!r}")
    if _entry(terms[0].name).kind != "optimizer":
        raise SpecError(f"{stripped!r} names no optimizer; start it with one, e.g. 'adamw(lr=loguniform(1e-5, 1)) + …'")
    # the space's centre (or each choice's first value) must make a valid spec: catches missing required
    # arguments and cross-parameter errors before anything runs
    space.spec({name: _centre(rng) for name, _, _, rng in space.hyperparameters()})
    return space


def _centre(rng: Range) -> Any:
    if rng.kind == "choice":
        return rng.values[0]
    low, high = rng.values
    middle = math.sqrt(low * high) if rng.log else (low + high) / 2
    return round(middle) if rng.integer else middle


def _space_term(node: ast.AST, text: str) -> SpaceTerm:
    if isinstance(node, ast.Name):
        name, pos, kws = node.id, [], []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, pos, kws = node.func.id, node.args, node.keywords
    else:
        raise SpecError(f"{text!r}: {ast.unparse(node)!r} is not a method; write a name or a call like cosine()")
    entry = _entry(name)
    params = {p.name: p for p in entry.params}
    if any(isinstance(a, ast.Starred) for a in pos) or any(k.arg is None for k in kws):
        raise SpecError(f"{name}(…): * and ** arguments are not allowed in a search space")
    if len(pos) > len(entry.params):
        raise SpecError(f"{name}() takes at most {len(entry.params)} positional argument(s), got {len(pos)}")
    pairs = [(p.name, a) for p, a in zip(entry.params, pos)]
    for kw in kws:
        if kw.arg not in params:
            raise SpecError(unknown_argument(name, kw.arg, params, entry.renamed))
        if kw.arg in dict(pairs):
            raise SpecError(f"{name}() got {kw.arg!r} twice")
        pairs.append((kw.arg, kw.value))
    fixed, ranges = [], []
    for param_name, value in pairs:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in RANGES:
            ranges.append((param_name, _range(value, params[param_name], name)))
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            raise SpecError(
                f"{name}({param_name}={ast.unparse(value)}): unknown range {value.func.id!r}"
                f"{closest_hint(value.func.id, RANGES)}; ranges: {', '.join(RANGES)}"
            )
        else:
            fixed.append((param_name, _literal(value, f"{name}({param_name}=…)")))
    return SpaceTerm(name, tuple(fixed), tuple(ranges))


def _range(node: ast.Call, param: Param, owner: str) -> Range:
    kind = node.func.id  # type: ignore[attr-defined]
    where = f"{owner}({param.name}={ast.unparse(node)})"
    if node.keywords:
        raise SpecError(f"{where}: a range takes positional values only, e.g. {kind}(1e-5, 1)")
    values = tuple(_literal(a, where) for a in node.args)
    if param.type not in ("float", "int", "horizon") and not (kind == "choice" and param.type in ("str", "bool")):
        raise SpecError(
            f"{where}: {param.name} is a {param.type} parameter and cannot take a numeric range"
            + ("; use choice(…) for a string or bool" if param.type in ("str", "bool") else "; give it a value")
        )
    if kind == "choice":
        if len(values) < 2 or len(set(values)) != len(values):
            raise SpecError(f"{where}: choice needs at least two different values, e.g. choice(0.9, 0.99)")
        for v in values:
            param.coerce(v, owner)
        return Range(kind, values)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise SpecError(f"{where}: {kind} takes two numbers (low, high), e.g. {kind}(1, 10)")
    low, high = values
    if not all(math.isfinite(v) for v in values):
        raise SpecError(f"{where}: the bounds must be finite numbers")
    if not low < high:
        raise SpecError(f"{where}: the range is empty (low {low:g} is not below high {high:g}); write low first")
    integer = kind in ("intrange", "logintrange")
    if integer and not (isinstance(low, int) and isinstance(high, int)):
        raise SpecError(f"{where}: {kind} takes whole numbers, e.g. {kind}(1, 50)")
    if param.type == "int" and not integer:
        raise SpecError(f"{where}: {param.name} is an integer; use intrange({int(low)}, {int(high)}) or logintrange")
    if param.type == "horizon" and not integer and not (0 < low and high <= 1):
        raise SpecError(f"{where}: a float {param.name} is a fraction of the run in (0, 1]; use intrange for steps")
    if kind.startswith("log") and low <= 0:
        raise SpecError(f"{where}: a log scale needs low > 0, got {low:g}; use uniform, or a positive low such as 1e-5")
    # each bound must be a value the parameter accepts; an open bound (lr > 0) may be a uniform range's
    # endpoint, since a continuous range hits it with probability zero (the paper tunes lr in [0, 1])
    for bound in (low, high):
        on_open_edge = (
            not integer
            and not kind.startswith("log")
            and ((param.low_open and bound == param.low) or (param.high_open and bound == param.high))
        )
        if not on_open_edge:
            param.coerce(int(bound) if param.type in ("int", "horizon") and integer else bound, owner)
    return Range(kind, (low, high))
