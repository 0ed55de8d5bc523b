"""Synthetic test functions: the "model" is one point x ∈ R^d, the loss is f(x) (or f(x + ε)).

Functions in any dimension d (name `<function>-<d>`, e.g. `sphere-50`):

    sphere         f(x) = Σ x_i²                                          x* = 0
    ellipsoid<κ>   f(x) = Σ κ^((i−1)/(d−1)) x_i²   κ = 1e3 or 1e6          x* = 0
    rosenbrock     f(x) = Σ_{i<d} 100 (x_{i+1} − x_i²)² + (1 − x_i)²       x* = 1
    rastrigin      f(x) = 10 d + Σ (x_i² − 10 cos 2πx_i)                  x* = 0
    ackley         f(x) = −20 exp(−0.2 sqrt(mean x²)) − exp(mean cos 2πx) + 20 + e     x* = 0

and the 2-D functions of the CLARA study (Atamna et al. 2025, arXiv 2508.05408):

    himmelblau     (x² + y − 11)² + (x + y² − 7)²       four global minima, f* = 0
    beale          (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²     x* = (3, 0.5)
    eggholder      −(y + 47) sin sqrt|x/2 + y + 47| − x sin sqrt|x − (y + 47)|  on [−512, 512]²,
                   x* = (512, 404.2319), f* = −959.6407
    camel3         2x² − 1.05x⁴ + x⁶/6 + xy + y²  (three-hump camel)             x* = 0

Noisy versions (`-noisy`, σ = 0.1, or `-noisy<σ>`) train on f(x + ε) with fresh ε ~ N(0, σ² I)
at every evaluation of the loss, drawn from the run's batch generator; as in the CLARA paper's
noisy sphere, this makes the gradient stochastic while the optimum stays where it was.

Evaluation is noise-free and in float64: "loss" = f(x), "regret" = f(x) − f*, and "distance" =
‖x − x*‖ (to the nearest global minimum where there are several). "val" and "test" are the same.
The start point is uniform in the function's usual search box, drawn from the seed.

The Eggholder function is unbounded below outside its box, so its loss adds a quadratic wall
100·‖x − clamp(x)‖² and evaluates f at clamp(x): inside the box nothing changes, and no step can
make the regret negative by leaving the box (the CLARA authors clamped their iterates instead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from lrcontrol.errors import LRControlError
from lrcontrol.limits import MAX_DIMS
from lrcontrol.tasks.base import Task, TaskInstance, check_split
from lrcontrol.tasks.registry import register_pattern, register_task

SYNTHETIC_VERSION = "1"
DEFAULT_NOISE = 0.1
# A quadratic wall strong enough to dominate Eggholder's slope (|∇f| ≲ 2 near the box edges).
_WALL = 100.0

Fn = Callable[[torch.Tensor], torch.Tensor]


def _sphere(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(-1)


def _ellipsoid(condition: float) -> Fn:
    def f(x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        exponents = torch.arange(d, dtype=x.dtype) / max(d - 1, 1)
        return (condition**exponents * x * x).sum(-1)

    return f


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    head, tail = x[..., :-1], x[..., 1:]
    return (100.0 * (tail - head * head) ** 2 + (1.0 - head) ** 2).sum(-1)


def _rastrigin(x: torch.Tensor) -> torch.Tensor:
    return 10.0 * x.shape[-1] + (x * x - 10.0 * torch.cos(2 * math.pi * x)).sum(-1)


def _ackley(x: torch.Tensor) -> torch.Tensor:
    # The 1e-12 keeps sqrt differentiable at the optimum; f* is computed with the same formula.
    radius = torch.sqrt((x * x).mean(-1) + 1e-12)
    return -20.0 * torch.exp(-0.2 * radius) - torch.exp(torch.cos(2 * math.pi * x).mean(-1)) + 20.0 + math.e


def _himmelblau(x: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0], x[..., 1]
    return (a * a + b - 11.0) ** 2 + (a + b * b - 7.0) ** 2


def _beale(x: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0], x[..., 1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


_EGG_BOX = 512.0


def _eggholder(x: torch.Tensor) -> torch.Tensor:
    inside = x.clamp(-_EGG_BOX, _EGG_BOX)
    a, b = inside[..., 0], inside[..., 1]
    value = -(b + 47.0) * torch.sin(torch.sqrt(torch.abs(a / 2 + b + 47.0))) - a * torch.sin(
        torch.sqrt(torch.abs(a - (b + 47.0)))
    )
    return value + _WALL * ((x - inside) ** 2).sum(-1)


def _camel3(x: torch.Tensor) -> torch.Tensor:
    a, b = x[..., 0], x[..., 1]
    return 2 * a * a - 1.05 * a**4 + a**6 / 6 + a * b + b * b


@dataclass(frozen=True)
class _Function:
    """A test function: its formula, search box, global minima (rows) and the regret target."""

    fn: Fn
    box: tuple[float, float]
    minima: Callable[[int], list[list[float]]]
    target: float
    dims: int | None = None  # fixed dimension (2-D functions), or None for any d
    min_dims: int = 1


_ANY_D: dict[str, _Function] = {
    "sphere": _Function(_sphere, (-5.0, 5.0), lambda d: [[0.0] * d], target=1e-3),
    "ellipsoid1e3": _Function(_ellipsoid(1e3), (-5.0, 5.0), lambda d: [[0.0] * d], target=1e-3),
    "ellipsoid1e6": _Function(_ellipsoid(1e6), (-5.0, 5.0), lambda d: [[0.0] * d], target=1e-3),
    "rosenbrock": _Function(_rosenbrock, (-2.0, 2.0), lambda d: [[1.0] * d], target=1e-2, min_dims=2),
    "rastrigin": _Function(_rastrigin, (-5.12, 5.12), lambda d: [[0.0] * d], target=1.0),
    "ackley": _Function(_ackley, (-5.0, 5.0), lambda d: [[0.0] * d], target=1e-1),
}
_TWO_D: dict[str, _Function] = {
    "himmelblau": _Function(
        _himmelblau,
        (-5.0, 5.0),
        lambda d: [[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]],
        target=1e-4,
        dims=2,
    ),
    "beale": _Function(_beale, (-4.5, 4.5), lambda d: [[3.0, 0.5]], target=1e-4, dims=2),
    "eggholder": _Function(_eggholder, (-_EGG_BOX, _EGG_BOX), lambda d: [[512.0, 404.2319]], target=1.0, dims=2),
    "camel3": _Function(_camel3, (-5.0, 5.0), lambda d: [[0.0, 0.0]], target=1e-4, dims=2),
}
FUNCTIONS = {**_ANY_D, **_TWO_D}

_SIZES = {"smoke": {"budget": 50, "eval_every": 10}, "default": {"budget": 1000, "eval_every": 50}}


class PointModel(torch.nn.Module):
    """The "model" of a synthetic task: one parameter vector, the current point x."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(start.clone())

    def forward(self) -> torch.Tensor:
        return self.x


@dataclass(frozen=True, kw_only=True)
class SyntheticTask(Task):
    """Minimise a test function from a random start; the seed picks the start point."""

    function: str
    dims: int
    noise: float = 0.0

    def build(self, seed: int) -> SyntheticInstance:
        return SyntheticInstance(self, seed)

    def meta_features(self) -> dict[str, float | int | str]:
        spec = FUNCTIONS[self.function]
        return {
            **self.base_meta(),
            "kind": "function",
            "function": self.function,
            "params": self.dims,
            "input_dim": self.dims,
            "examples": 0,
            "classes": 0,
            "noise": self.noise,
            "box_width": spec.box[1] - spec.box[0],
            "minima": len(spec.minima(self.dims)),
        }


class SyntheticInstance(TaskInstance):
    def __init__(self, task: SyntheticTask, seed: int) -> None:
        self.task = task
        spec = FUNCTIONS[task.function]
        self._fn = spec.fn
        low, high = spec.box
        start_rng = torch.Generator().manual_seed(seed)
        start = low + (high - low) * torch.rand(task.dims, generator=start_rng, dtype=torch.float64)
        self.model = PointModel(start.float())
        self._minima = torch.tensor(spec.minima(task.dims), dtype=torch.float64)
        self._f_star = float(self._fn(self._minima).min())
        self._no_noise = torch.zeros(1, task.dims)

    def train_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Input noise ε ~ N(0, σ² I), one row per noisy evaluation in the batch (zeros when σ = 0)."""
        shape = (self.task.batch_size, self.task.dims)
        while True:
            if self.task.noise > 0:
                yield self.task.noise * torch.randn(shape, generator=generator)
            else:
                yield self._no_noise

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        point = model()
        return self._fn(point + batch).mean()

    def evaluate(self, model: torch.nn.Module, split: str = "val") -> dict[str, float]:
        check_split(split)
        with torch.no_grad():
            point = model().detach().double()
            value = float(self._fn(point))
            distance = float(torch.linalg.vector_norm(self._minima - point, dim=-1).min())
        return {"loss": value, "regret": value - self._f_star, "distance": distance}


def _task_name(function: str, dims: int, noise: float) -> str:
    name = function if function in _TWO_D else f"{function}-{dims}"
    if noise > 0:
        name += "-noisy" if noise == DEFAULT_NOISE else f"-noisy{noise:g}"
    return name


def make_synthetic(function: str, dims: int | None = None, noise: float = 0.0, size: str = "default") -> SyntheticTask:
    """The synthetic task for `function` in `dims` dimensions, with input noise σ = `noise`."""
    if function not in FUNCTIONS:
        raise LRControlError(f"unknown synthetic function {function!r}; choose one of {', '.join(FUNCTIONS)}")
    spec = FUNCTIONS[function]
    if spec.dims is not None:
        if dims not in (None, spec.dims):
            raise LRControlError(f"{function} is defined in {spec.dims} dimensions only; name it {function!r}")
        dims = spec.dims
    if dims is None or dims < spec.min_dims:
        raise LRControlError(f"{function} needs a dimension of at least {spec.min_dims}, e.g. {function}-10")
    if dims > MAX_DIMS:
        raise LRControlError(f"{function}-{dims}: at most {MAX_DIMS} dimensions (each is a parameter in memory)")
    if not (noise >= 0 and math.isfinite(noise)):
        raise LRControlError(f"input noise must be a finite σ ≥ 0, got {noise}")
    sizes = _SIZES[size]
    noisy = f", input noise σ = {noise:g}" if noise > 0 else ""
    return SyntheticTask(
        name=_task_name(function, dims, noise),
        version=SYNTHETIC_VERSION,
        family="synthetic",
        size=size,
        budget=sizes["budget"],
        batch_size=1,
        eval_every=sizes["eval_every"],
        metric="regret",
        higher_is_better=False,
        target=spec.target,
        description=f"{function} in {dims} dimensions{noisy}",
        function=function,
        dims=dims,
        noise=noise,
    )


def _from_match(match: re.Match[str], size: str) -> SyntheticTask:
    noise = 0.0
    if match["noisy"]:
        noise = float(match["sigma"]) if match["sigma"] else DEFAULT_NOISE
    if match["dims"] and len(match["dims"]) > len(str(MAX_DIMS)):  # before int(): 5000 digits would raise
        raise LRControlError(f"{match['function']}: at most {MAX_DIMS} dimensions (each is a parameter in memory)")
    dims = int(match["dims"]) if match["dims"] else None
    return make_synthetic(match["function"], dims, noise, size)


_FUNCTION_NAMES = "|".join(sorted(FUNCTIONS, key=len, reverse=True))
register_pattern(
    rf"(?P<function>{_FUNCTION_NAMES})(?:-(?P<dims>\d+))?(?P<noisy>-noisy(?P<sigma>\d+(?:\.\d*)?(?:e-?\d+)?)?)?",
    "synthetic",
    "sphere-200, rastrigin-20-noisy0.5",
    _from_match,
)

LISTED = [
    ("sphere", 10, 0.0),
    ("sphere", 50, 0.0),
    ("sphere", 50, DEFAULT_NOISE),
    ("ellipsoid1e3", 10, 0.0),
    ("ellipsoid1e3", 10, DEFAULT_NOISE),
    ("ellipsoid1e6", 10, 0.0),
    ("ellipsoid1e6", 10, DEFAULT_NOISE),
    ("rosenbrock", 10, 0.0),
    ("rastrigin", 10, 0.0),
    ("ackley", 10, 0.0),
    ("himmelblau", 2, 0.0),
    ("beale", 2, 0.0),
    ("eggholder", 2, 0.0),
    ("camel3", 2, 0.0),
]
for _function, _dims, _noise in LISTED:
    register_task(
        _task_name(_function, _dims, _noise),
        "synthetic",
        lambda size, f=_function, d=_dims, s=_noise: make_synthetic(f, d, s, size),
    )
