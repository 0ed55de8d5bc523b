"""The training loop every conformance check runs: a `Case` (what is checked), a `Rig` (a small real
model, its optimizer and controller) and `train`, which walks it with losses, evaluations and, on
request, poisoned inputs; states are saved and loaded as a checkpoint would be (`weights_only`)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lrcontrol.api import LRController, make_optimizer
from lrcontrol.control.base import Factor
from lrcontrol.errors import LRControlError
from lrcontrol.spec import parse

DEFAULT_OPTIMIZER = "sgd(lr=0.05, momentum=0.9)"
STEPS = 40
EVAL_EVERY = 2
FIRST_GROUP_LR = 0.02


@dataclass
class Case:
    """One factor to check: a spec fragment of a registered controller, or a function returning a Factor."""

    factor: str | Callable[[], Factor]
    optimizer: str = DEFAULT_OPTIMIZER
    name: str = ""
    one_lr: bool = False  #: for optimizers that need one LR in every group (D-Adaptation, Prodigy)

    def __post_init__(self) -> None:
        if not self.name:
            if isinstance(self.factor, str):
                self.name = self.factor
            else:
                self.name = getattr(self.factor, "__name__", None) or type(self.factor).__name__

    def new_factors(self) -> list[Factor]:
        if isinstance(self.factor, str):
            from lrcontrol.api import make_factors

            return make_factors(parse(self.factor).factors)
        made = self.factor()
        if not isinstance(made, Factor):
            raise TypeError(f"{self.name}: the factory returned {type(made).__name__}, not a lrcontrol Factor")
        return [made]

    @property
    def kind(self) -> str:
        return self.new_factors()[0].kind

    def __repr__(self) -> str:
        return f"{self.optimizer} + {self.name}"


@dataclass
class Rig:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    controller: LRController
    x: torch.Tensor
    y: torch.Tensor
    log: list[list[float]] = field(default_factory=list)


def make_rig(case: Case, seed: int = 0, extra_factors: Sequence[Factor] = ()) -> Rig:
    """The training loop of every check: 3-class data, an 8-16-3 MLP, two param groups."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    first: dict[str, Any] = {"params": list(model[0].parameters())}
    opt_term = parse(case.optimizer).optimizer
    if opt_term is None:
        raise LRControlError(f"{case.name}: Case.optimizer must name an optimizer, got {case.optimizer!r}")
    if not case.one_lr:
        first["lr"] = FIRST_GROUP_LR * opt_term.full_kwargs()["lr"] / 0.05
    optimizer = make_optimizer([first, {"params": list(model[2].parameters())}], opt_term)

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def train_batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(99)
        while True:
            idx = torch.randint(0, 256, (32,), generator=g)
            yield x[idx], y[idx]

    resources = {"model": model, "loss_fn": loss_fn, "train_batches": train_batches}
    factors = [*extra_factors, *case.new_factors()]
    controller = LRController(optimizer, factors, STEPS, repr(case), resources)
    return Rig(model, optimizer, controller, x, y)


def batch_at(rig: Rig, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(t)
    idx = torch.randint(0, rig.x.shape[0], (32,), generator=g)
    return rig.x[idx], rig.y[idx]


def train(
    rig: Rig, start: int, stop: int, save_at: int | None = None, poison: bool = False, wobble: float = 0.05
) -> tuple[list[list[float]], bytes | None]:
    """Train steps [start, stop); return the LRs after each step and the state saved after step `save_at`."""
    lrs, saved = [], None
    for t in range(start, stop):
        bx, by = batch_at(rig, t)
        loss = torch.nn.functional.cross_entropy(rig.model(bx), by)
        rig.optimizer.zero_grad()
        loss.backward()
        rig.optimizer.step()
        reported = loss.item()
        if poison and t % 7 == 3:
            reported = [math.nan, math.inf, -math.inf][t % 3]
        rig.controller.step(reported)
        if (t + 1) % EVAL_EVERY == 0:
            with torch.no_grad():
                val = torch.nn.functional.cross_entropy(rig.model(rig.x), rig.y).item()
            # A deterministic wobble, so reactive rules see both improvements and setbacks.
            val += wobble * ((t // EVAL_EVERY) % 3)
            if poison and (t + 1) % (2 * EVAL_EVERY) == 0:
                val = math.nan
            rig.controller.report(val_loss=val, val_acc=1.0 / (1.0 + val) if math.isfinite(val) else val)
        lrs.append(rig.controller.lrs)
        if save_at is not None and t + 1 == save_at:
            saved = save_state(rig)
    return lrs, saved


def save_state(rig: Rig) -> bytes:
    buffer = io.BytesIO()
    torch.save([rig.model.state_dict(), rig.optimizer.state_dict(), rig.controller.state_dict()], buffer)
    return buffer.getvalue()


def load_state(rig: Rig, saved: bytes) -> None:
    # weights_only: a checkpoint must load without running code
    model_state, optimizer_state, controller_state = torch.load(io.BytesIO(saved), weights_only=True)
    rig.model.load_state_dict(model_state)
    rig.optimizer.load_state_dict(optimizer_state)
    rig.controller.load_state_dict(controller_state)


def parameters_of(rig: Rig) -> list[torch.Tensor]:
    return [p.detach().clone() for p in rig.model.parameters()]
