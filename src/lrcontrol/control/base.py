"""The factor interface: every way of moving the LR is one multiplicative factor.

    lr_t(group) = base_lr(group) · m_1(t) · m_2(t) · … · m_k(t)

A `Factor` is one m_i: a schedule, a reactive rule, an online rule. `control/controller.py`'s
`LRController` attaches a stack of them to any `torch.optim.Optimizer` and sets the product before
each optimizer step; a factor sees the run through the `Context` it is attached to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from lrcontrol.control.state import load_fields, save_fields, save_value
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param

if TYPE_CHECKING:
    from lrcontrol.control.controller import LRController

Multiplier = float | Sequence[float]


@dataclass
class Context:
    """What a factor is attached to.

    resources: optional objects the caller can hand to factors that need more than the optimizer
    (for example a model, a loss and batches for an LR range test); plain loops leave it empty.
    """

    optimizer: torch.optim.Optimizer
    total_steps: int | None
    base_lrs: list[float]
    resources: dict[str, Any] = field(default_factory=dict)
    controller: LRController | None = None

    @property
    def num_groups(self) -> int:
        return len(self.optimizer.param_groups)


class Factor:
    """One multiplicative factor of the learning rate.

    Subclasses set `name`, `kind` and `params` (the registry and the spec language read them),
    and override what they need:

    - `multiplier(t)`: the factor for the upcoming step t (a float, or one float per param group);
    - `on_step(t, loss)`: step t has been taken; `loss` is a float (possibly non-finite) or None;
    - `on_evaluation(metrics)`: evaluation metrics were reported (values may be non-finite);
    - `on_pre_step(optimizer)` / `on_post_step(optimizer)`: around each `optimizer.step()` call,
      only for factors with `uses_step_hooks = True`;

    Runtime state is saved whole (`state_dict()`): every instance attribute except those named in
    `transient` (on this class or a base class) — the links to the optimizer, structure that
    `attach()` rebuilds from the same optimizer, scratch buffers and resolved horizons that follow a
    resumed controller's `total_steps`. A new attribute is therefore saved unless it is declared
    transient; `after_load()` recomputes what depends on loaded fields. The saved state carries the
    factor's parameters and is refused, naming the parameter, under different ones
    (see docs/edges.md: why lrcontrol refuses instead of restoring the saved hyperparameters as torch does).

    A factor must never return a non-finite, zero or negative multiplier, whatever it is fed —
    except a factor with `may_reach_zero = True` (Hugging Face's schedules, which start their warmup
    at LR 0 and end at 0), which may return exactly 0.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "schedule"
    params: ClassVar[tuple[Param, ...]] = ()
    example: ClassVar[str] = ""
    #: spec fragments the conformance suite runs (at least two; lrcontrol.testing): every variant worth checking
    examples: ClassVar[tuple[str, ...]] = ()
    example_optimizer: ClassVar[str] = ""
    uses_step_hooks: ClassVar[bool] = False
    uses_loss: ClassVar[bool] = False
    #: order among the step hooks (lower first): -2 gradient transforms, -1 step transforms, 0 the rest
    hook_order: ClassVar[int] = 0
    may_reach_zero: ClassVar[bool] = False
    #: training steps this factor spent outside the run itself (e.g. an LR range test); counted as cost
    extra_steps: int = 0
    #: attributes that are not runtime state (besides `ctx` and `config`); merged over the base classes
    transient: ClassVar[tuple[str, ...]] = ()
    #: old parameter names → today's: a spec with an old name is refused naming the new one, and a
    #: state saved under the old name is read as the new one (lrcontrol 0.4 renamed floors `floor`)
    renamed: ClassVar[dict[str, str]] = {}

    def __init__(self, **kwargs: Any) -> None:
        known = {p.name: p for p in self.params}
        for key in kwargs:
            if key not in known:
                from lrcontrol.params import unknown_argument

                raise LRControlError(unknown_argument(self.name, key, known, self.renamed))
        self.config: dict[str, Any] = {}
        for p in self.params:
            if p.name in kwargs:
                value = p.coerce(kwargs[p.name], self.name)
            elif p.required:
                raise LRControlError(f"{self.name}() needs {p.name}: {p.doc}")
            else:
                value = p.default
            self.config[p.name] = value
        self.ctx: Context | None = None
        self.check_config()

    def check_config(self) -> None:
        """Cross-parameter checks (raise LRControlError with the fix)."""

    def attach(self, ctx: Context) -> None:
        self.ctx = ctx

    def multiplier(self, t: int) -> Multiplier:
        return 1.0

    def on_step(self, t: int, loss: float | None) -> None:
        pass

    def on_evaluation(self, metrics: dict[str, float]) -> None:
        pass

    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def on_post_step(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def on_close(self) -> None:
        """The controller is closing (its hooks removed): release what the factor holds on the optimizer."""

    def observables(self) -> dict[str, Any]:
        """Extra values worth logging (e.g. CLARA's path ratio); plain numbers or lists."""
        return {}

    # -- exact resume: the runtime state whole ----------------------------------------------------
    @classmethod
    def _transient(cls) -> set[str]:
        names = {"ctx", "config"}
        for klass in cls.__mro__:
            names.update(klass.__dict__.get("transient", ()))
        return names

    def state_dict(self) -> dict[str, Any]:
        """Every runtime attribute (copied) and the parameters it was saved under (`config`)."""
        return {"config": save_value(self.config), **save_fields(self, self._transient())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; refused, naming the parameter, if it was saved under other parameters."""
        state = self.upgrade_state(dict(state))
        saved = state.pop("config", None)
        if saved is not None:
            saved = {self.renamed.get(key, key): value for key, value in saved.items()}
            for key, value in self.config.items():
                if key in saved and not _same_value(saved[key], value):
                    raise LRControlError(
                        f"{self.name}: this state was saved with {key}={saved[key]!r} but this controller has "
                        f"{key}={value!r}; build the spec the state was saved from to resume it"
                    )
        load_fields(self, state, self._transient(), self.name)
        self.after_load()

    def upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Map a state saved by an older lrcontrol to today's fields (default: unchanged)."""
        return state

    def after_load(self) -> None:
        """Recompute what depends on loaded fields (e.g. a horizon split); default: nothing."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({args})"


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b


def group_values(values: Sequence[float] | None, ctx: Context, owner: str) -> list[float] | None:
    """A declared list as one value per param group: a single value applies to every group."""
    if values is None:
        return None
    n = ctx.num_groups
    if len(values) == 1:
        return [float(values[0])] * n
    if len(values) != n:
        raise LRControlError(f"{owner}: {len(values)} values for {n} param groups; give one, or one per group")
    return [float(v) for v in values]
