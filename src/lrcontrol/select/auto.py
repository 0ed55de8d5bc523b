"""`auto()`: probe a task, let the shipped selector pick a portfolio member, and train that member.

In a training loop you already have:

    optimizer, controller, choice = lrcontrol.auto(model, loss_fn, batches, total_steps=1000)
    print(choice)                   # the member, its spec, why, the predicted regret, the probe's cost
    for batch in loader:
        loss = loss_fn(batch); loss.backward(); optimizer.step(); controller.step(loss); optimizer.zero_grad()

As a method in a spec — `lrcontrol run TASK "auto()"`, or `methods = ["auto()"]` in a sweep file — the
engine does the same on the task (`choose_for_task`): it probes, chooses, trains the member; the stored
run's `extra_steps` include the probe's steps and its trajectory's observables name the choice
(`auto.member`, `auto.spec`). The probes put the model, optimizer state and every RNG back, so the member
starts exactly where it would have without them.

The selector is a file (`lrcontrol.select.shipped`): the package's own, $LRCONTROL_SELECTOR, or one you
pass. Its features are the probe's (`lrcontrol.select.features`); the features a plain loop cannot
measure (the data set's size, the number of classes, …) stay unknown unless `hints` gives them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrcontrol.errors import LRControlError
from lrcontrol.select.shipped import SelectorFile, read

#: how many nearest instances and deciding features an explanation lists
SHOWN = 5


@dataclass(frozen=True)
class Choice:
    """What `auto()` chose, and why. `str(choice)` (= `choice.explain()`) says it in a few lines.

    member / spec: the portfolio member and the spec it trains with. kind / selector: the selector's
    kind and the identity (content hash) of its file. features: the features the selector read (NaN:
    unknown, imputed with its training median).
    predicted: the selector's predicted regret per member (a pairwise selector's wins per member, with
    `votes`). neighbours: for a
    k-nearest selector, the nearest known instances and their distances. deciding: for a model, the
    features that weigh most (name, value, weight). probe_steps: the steps the probes trained;
    total_steps: the run they were measured for; probe_seconds: their wall time.
    """

    member: str
    spec: str
    kind: str
    selector: str
    features: dict[str, float]
    probe_steps: int
    total_steps: int
    predicted: dict[str, float] = field(default_factory=dict)
    neighbours: list[tuple[str, float]] = field(default_factory=list)
    deciding: list[tuple[str, float, float]] = field(default_factory=list)
    probe_seconds: float = 0.0
    votes: bool = False  # `predicted` holds a pairwise selector's wins per member, not regrets

    @property
    def probe_cost(self) -> float:
        """The probe's steps in full-run equivalents (probe_steps / total_steps)."""
        return self.probe_steps / self.total_steps

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings, numbers, lists): what a checkpoint keeps so a resumed run does not re-probe."""
        return {
            "member": self.member,
            "spec": self.spec,
            "kind": self.kind,
            "selector": self.selector,
            "features": {k: float(v) for k, v in self.features.items()},
            "probe_steps": int(self.probe_steps),
            "total_steps": int(self.total_steps),
            "predicted": {k: float(v) for k, v in self.predicted.items()},
            "neighbours": [[name, float(d)] for name, d in self.neighbours],
            "deciding": [[name, float(v), float(w)] for name, v, w in self.deciding],
            "probe_seconds": float(self.probe_seconds),
            "votes": bool(self.votes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        try:
            return cls(
                member=str(data["member"]),
                spec=str(data["spec"]),
                kind=str(data["kind"]),
                selector=str(data["selector"]),
                features={str(k): float(v) for k, v in data["features"].items()},
                probe_steps=int(data["probe_steps"]),
                total_steps=int(data["total_steps"]),
                predicted={str(k): float(v) for k, v in data.get("predicted", {}).items()},
                neighbours=[(str(n), float(d)) for n, d in data.get("neighbours", [])],
                deciding=[(str(n), float(v), float(w)) for n, v, w in data.get("deciding", [])],
                probe_seconds=float(data.get("probe_seconds", 0.0)),
                votes=bool(data.get("votes", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LRControlError(f"a stored auto() choice is incomplete ({type(exc).__name__}: {exc})") from None

    def observables(self) -> dict[str, Any]:
        """What a run's trajectory records of the choice (its `observables`, beside the controller's)."""
        return {
            "auto.member": self.member,
            "auto.spec": self.spec,
            "auto.selector": f"{self.kind} {self.selector}",
            "auto.probe_steps": self.probe_steps,
        }

    def explain(self) -> str:
        """The choice in a few lines: member and spec, why, the predicted regret, the probe's cost."""
        lines = [f"auto() chose {self.member}: {self.spec}"]
        lines.append(f"  selector: {self.kind} ({self.selector})")
        lines.append(
            f"  probe: {self.probe_steps} steps = {self.probe_cost:.3f} of the {self.total_steps}-step run "
            f"({self.probe_seconds:.2f} s); the whole run costs {1 + self.probe_cost:.3f} runs"
        )
        if self.neighbours:
            near = ", ".join(f"{name} (distance {d:.3g})" for name, d in self.neighbours[:SHOWN])
            lines.append(f"  nearest known instances: {near}")
        if self.deciding:
            top = ", ".join(f"{name} = {value:.3g} (weight {w:.3g})" for name, value, w in self.deciding[:SHOWN])
            lines.append(f"  deciding features: {top}")
        if self.predicted and self.votes:
            ranked = sorted(self.predicted.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(
                f"  pairwise wins (of {len(self.predicted) - 1}): " + ", ".join(f"{m} {v:g}" for m, v in ranked)
            )
        elif self.predicted:
            ranked = sorted(self.predicted.items(), key=lambda kv: (kv[1], kv[0]))
            lines.append("  predicted regret: " + ", ".join(f"{m} {r:.3f}" for m, r in ranked))
        known = {k: v for k, v in self.features.items() if math.isfinite(v)}
        lines.append(f"  features measured: {len(known)} of {len(self.features)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


# -- the selector ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A selector file and the working selector made from it."""

    file: SelectorFile
    selector: Any


def load(selector: Any = None) -> Loaded:
    """The selector to choose with: None (the shipped one, or $LRCONTROL_SELECTOR), a path to a
    selector file, or an already loaded `Loaded`. Checks that the selector names only the file's members."""
    if isinstance(selector, Loaded):
        return selector
    file = read(selector)
    return _from_file(file)


_LOADED: dict[tuple[str, str], Loaded] = {}


def _from_file(file: SelectorFile) -> Loaded:
    from lrcontrol.select.selectors import selector_from_dict

    cached = _LOADED.get((file.path, file.identity))
    if cached is not None:
        return cached
    picks = file.selector.get("members")
    if not isinstance(picks, list) or not picks or not all(isinstance(m, str) for m in picks):
        raise LRControlError(f"{file.path}: the selector does not list the members it picks; retrain it")
    unknown = sorted(set(picks) - set(file.members))
    if unknown:
        raise LRControlError(
            f"{file.path}: the selector picks {', '.join(map(repr, unknown))}, which the file's members do not "
            f"name (members: {', '.join(sorted(file.members))}); retrain it with `lrcontrol select train`"
        )
    if file.selector.get("kind") != file.kind:
        raise LRControlError(
            f"{file.path}: the file says kind {file.kind!r} but holds a {file.selector.get('kind')!r} selector"
        )
    try:
        made = selector_from_dict(file.selector)
    except LRControlError as exc:
        raise LRControlError(f"{file.path}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise LRControlError(f"{file.path}: the selector's arrays are incomplete or malformed ({exc!r:.200})") from None
    if list(made.inputs.columns) != list(file.features):
        raise LRControlError(f"{file.path}: the selector reads other features than the file lists; retrain it")
    loaded = Loaded(file, made)
    _LOADED[(file.path, file.identity)] = loaded
    return loaded


def select(features: Mapping[str, float], selector: Any = None) -> tuple[str, str, dict[str, Any]]:
    """(member, spec, explanation) for one instance's features; the explanation holds `predicted`,
    `neighbours` and `deciding` (see `Choice`). Features the selector reads but `features` lacks (NaN)
    are imputed by the selector with its training medians; with none of them measured there is nothing
    to choose from, and that is an error."""
    loaded = load(selector)
    made = loaded.selector
    row = {name: float(features.get(name, math.nan)) for name in loaded.file.features}
    if not any(math.isfinite(v) for v in row.values()):
        raise LRControlError(
            "auto(): none of the selector's features could be measured on this task (every probe failed and "
            "nothing static is known); check that the loss is a finite scalar, or choose a method yourself"
        )
    member = str(made.choose(row))
    if member not in loaded.file.members:
        raise LRControlError(f"{loaded.file.path}: the selector chose {member!r}, which is not one of its members")
    why: dict[str, Any] = {"features": row, "predicted": {}, "neighbours": [], "deciding": []}
    if hasattr(made, "predict_regrets"):
        why["predicted"] = {str(k): float(v) for k, v in made.predict_regrets(row).items()}
    elif hasattr(made, "pairs"):  # pairwise: each member's wins over the others (the votes that decided)
        p = made.probabilities(made.inputs.row(row))[0]
        votes = np.zeros(len(made.members))
        for (i, j), p_i in zip(made.pairs, p):  # as the selector counts them: a win 1, a tie 0.5 each
            win = 1.0 if p_i > 0.5 else 0.0 if p_i < 0.5 else 0.5
            votes[i], votes[j] = votes[i] + win, votes[j] + 1.0 - win
        why["predicted"] = {m: float(v) for m, v in zip(made.members, votes)}
        why["votes"] = True
    if hasattr(made, "nearest"):  # k-nearest: the known instances that decided
        why["neighbours"] = [(str(n), float(d)) for n, d in made.nearest(row)][:SHOWN]
    importances = getattr(made, "importances", None)
    if importances is not None:  # forests: the features that weigh most, with this task's values
        ranked = sorted(zip(loaded.file.features, importances), key=lambda kv: -float(kv[1]))[:SHOWN]
        why["deciding"] = [(name, row[name], float(w)) for name, w in ranked]
    return member, loaded.file.members[member], why


# -- the two entry points ----------------------------------------------------------------------------


def auto(
    model: Any,
    loss_fn: Callable[[Any], Any],
    batches: Any,
    total_steps: int,
    *,
    seed: int = 0,
    selector: Any = None,
    hints: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, Choice]:
    """Probe a training loop, choose a portfolio member with the selector, and build it.

    model: the nn.Module to train (the probes put it back exactly as it was); loss_fn: batch -> scalar
    loss tensor; batches: a callable returning a fresh iterator of training batches, or a re-iterable
    such as a DataLoader (not a one-shot iterator: the probes and the member both draw from it);
    total_steps: the planned run length (schedules plan for it; the probes take about 8 % of it, at
    least 38 steps). selector: a selector file path (default: the shipped one). hints: what the loop
    cannot see, e.g. {"examples": 60000, "classes": 10, "kind": "classification"}
    (`lrcontrol.select.features.HINTS`); the features they give are otherwise imputed by the selector.

    Returns (optimizer, controller, choice): step the controller after each optimizer step as with
    `lrcontrol.build`; `print(choice)` explains the choice.
    """
    import torch._dynamo  # noqa: F401  (a process's first optimizer imports it: seconds that are no probe's cost)

    import lrcontrol
    from lrcontrol.select.features import probe_loop

    loaded = load(selector)
    started = time.perf_counter()
    probe = probe_loop(model, loss_fn, batches, total_steps, seed=seed, hints=hints)
    seconds = time.perf_counter() - started
    features = dict(probe.features)
    member, spec, why = select(features, loaded)
    source = batches if callable(batches) else (lambda: iter(batches))
    resources = {"model": model, "loss_fn": loss_fn, "train_batches": source}
    optimizer, controller = lrcontrol.build(model, spec, total_steps=total_steps, resources=resources)
    choice = Choice(
        member=member,
        spec=controller.spec,
        kind=loaded.file.kind,
        selector=loaded.file.identity,
        probe_steps=int(probe.cost_steps),
        total_steps=int(total_steps),
        probe_seconds=seconds,
        **why,
    )
    return optimizer, controller, choice


def choose_for_task(task: Any, seed: int, total_steps: int, selector: Any = None) -> Choice:
    """Probe `task` (a Task, its run of `total_steps` steps from `seed`) and choose its member: what the
    engine does before training an `auto()` run. The probes run on their own copy of the task's model,
    under a forked RNG, so the run that follows is the member's run exactly."""
    import torch
    import torch._dynamo  # noqa: F401  (a process's first optimizer imports it: seconds that are no probe's cost)

    from lrcontrol.select.features import probe

    loaded = load(selector)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        measured = probe(task, seed, budget=total_steps)
    seconds = time.perf_counter() - started
    member, spec, why = select(measured.features, loaded)
    return Choice(
        member=member,
        spec=spec,
        kind=loaded.file.kind,
        selector=loaded.file.identity,
        probe_steps=int(measured.cost_steps),
        total_steps=int(total_steps),
        probe_seconds=seconds,
        **why,
    )


def choice_for_run(task: Any, seed: int, horizon: int, saved: Mapping[str, Any] | None, checkpoint: Any) -> Choice:
    """The member an auto() run of the engine trains: the checkpoint's choice when it resumes one (a run
    never probes twice), else `choose_for_task`'s for a run of `horizon` steps."""
    from lrcontrol.bench.checkpoint import BadCheckpointError
    from lrcontrol.select.method import AUTO_SPEC
    from lrcontrol.select.shipped import identity

    if saved is None:
        return choose_for_task(task, seed, horizon)
    if (saved["task"], saved["spec"], saved["seed"]) != (task.key, AUTO_SPEC, seed) or "auto" not in saved:
        raise BadCheckpointError(
            f"checkpoint {checkpoint} belongs to another run ({saved['task']!s:.80}, {saved['spec']!s:.200})"
        )
    try:
        choice = Choice.from_dict(saved["auto"])
    except LRControlError as exc:
        raise BadCheckpointError(f"checkpoint {checkpoint}: {exc}") from None
    if choice.selector != identity():
        raise BadCheckpointError(
            f"checkpoint {checkpoint} was chosen by another selector ({choice.selector}, now {identity()}); "
            "its run is not this one's"
        )
    return choice
