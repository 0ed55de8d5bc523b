"""Task parameters: a task name can take arguments, written like a method spec.

    letter-logreg(batch=64, epochs=100, head="sigmoid", inputs="libsvm", train_metric=True)

The arguments are parsed with `ast` (never evaluated) and validated by the same `Param` declarations
as method arguments. The canonical name — keywords in declared order, values that equal the task's
own dropped — is the task's `name`, so it is part of the run key; a name without arguments is the
plain task, with the same key as before parameters existed.

Adding a parameter is one line in `TASK_PARAMS`: its declaration, the task fields it sets, and the
families it applies to.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lrcontrol.errors import LRControlError, SpecError
from lrcontrol.params import Param, closest_hint

#: families whose instance is `ClassificationInstance` (epochs are passes over a training split)
_SPLIT_FAMILIES = ("tabular", "image", "sequence")
_ALL_FAMILIES = ("synthetic", "tabular", "image", "sequence", "language")


@dataclass(frozen=True)
class TaskParam:
    """One task argument: its declaration (`param.default` None means "the task's own value"), how it
    changes the task (`fields(task, value)` → the dataclass fields to replace), and where it applies."""

    param: Param
    fields: Callable[[Any, Any], dict[str, Any]]
    families: tuple[str, ...]
    #: within those families, the tasks it applies to (e.g. width: not to logistic regression)
    applies: Callable[[Any], bool] = lambda task: True
    #: where it applies, in words, for the listing (default: the families)
    where: str = ""

    @property
    def name(self) -> str:
        return self.param.name


def _field(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    return lambda task, value: {name: value}


def _epochs(task: Any, epochs: int) -> dict[str, Any]:
    # Batches are full (the last partial batch of an epoch is dropped), so an epoch is ⌊n / batch⌋ steps.
    return {"budget": epochs * max(1, task.train_examples() // task.batch_size)}


def _evals(task: Any, evals: int) -> dict[str, Any]:
    # the evaluation interval that gives `evals` evaluations over the budget (at least one step apart)
    return {"eval_every": max(1, task.budget // evals)}


def _width(task: Any, width: int) -> dict[str, Any]:
    if task.family == "language" and width % task.heads:
        raise LRControlError(
            f"task {task.name}: width must be a multiple of its {task.heads} attention heads, got {width}"
        )
    return {"width": width}


def _depth(task: Any, depth: int) -> dict[str, Any]:
    return {"layers": depth} if task.family == "language" else {"depth": depth}


def _has_width(task: Any) -> bool:
    return hasattr(task, "width") and getattr(task, "model", "") != "logreg"


def _has_depth(task: Any) -> bool:
    return task.family == "language" or (hasattr(task, "depth") and getattr(task, "model", "") == "mlp")


def _batched(task: Any) -> bool:
    # a noise-free synthetic function has no batch (its gradient is exact)
    return task.family != "synthetic" or task.noise > 0


# fmt: off
TASK_PARAMS: tuple[TaskParam, ...] = (
    TaskParam(Param("batch", None, "examples per training step (default: the task's own); noisy synthetic functions: noise draws averaged per step", type="int", low=1, nullable=True), _field("batch_size"), _ALL_FAMILIES, _batched, "tabular, image, sequence, language, noisy synthetic"),
    TaskParam(Param("fraction", 1.0, "keep this fraction of the training split (a fixed subset, the same for every seed)", type="float", low=0.0, high=1.0, low_open=True), _field("train_fraction"), _SPLIT_FAMILIES),
    TaskParam(Param("epochs", None, "training length in passes over the training split; sets the budget", type="int", low=1, nullable=True), _epochs, _SPLIT_FAMILIES),
    TaskParam(Param("steps", None, "training length in steps; sets the budget (instead of epochs)", type="int", low=1, high=10_000_000, nullable=True), _field("budget"), _ALL_FAMILIES),
    TaskParam(Param("evals", None, "evaluations over the run; sets the evaluation interval to ⌊budget / evals⌋ steps", type="int", low=1, nullable=True), _evals, _ALL_FAMILIES),
    TaskParam(Param("width", None, "hidden units of every MLP layer, channels of the first CNN layer, or the transformer's width", type="int", low=1, high=4096, nullable=True), _width, ("tabular", "image", "sequence", "language"), _has_width, "MLPs and CNNs (not logreg, not fmnist-finetune), language"),
    TaskParam(Param("depth", None, "hidden layers of an MLP, or transformer layers", type="int", low=1, high=16, nullable=True), _depth, ("tabular", "image", "sequence", "language"), _has_depth, "MLPs (not fmnist-finetune), language"),
    TaskParam(Param("context", None, "characters of context per window (default: the task's own)", type="int", low=2, high=1024, nullable=True), _field("context"), ("language",)),
    TaskParam(Param("label_noise", 0.0, "fraction of training labels replaced by a different random class (fixed per task, the same for every seed)", type="float", low=0.0, high=1.0, high_open=True), _field("label_noise"), _SPLIT_FAMILIES),
    TaskParam(Param("head", "softmax", "output head: softmax (logits → cross-entropy) or sigmoid (logits → sigmoid → log-softmax → NLL, the 'Revisiting' study's LIBSVM head)", type="str", choices=("softmax", "sigmoid")), _field("head"), ("tabular",)),
    TaskParam(Param("inputs", "standard", "feature preprocessing: standard (train-split mean/std), libsvm (each feature to [−1, 1], then each column / its L2 norm), raw", type="str", choices=("standard", "libsvm", "raw")), _field("inputs"), ("tabular",)),
    TaskParam(Param("train_metric", False, "also record the final metrics on the training split", type="bool"), _field("train_metric"), _SPLIT_FAMILIES),
)
# fmt: on


def split_name(text: str) -> tuple[str, dict[str, Any]]:
    """`"letter-logreg(batch=64)"` → `("letter-logreg", {"batch": 64})`; a plain name has no arguments."""
    from lrcontrol.spec import _literal

    text = text.strip()
    if "(" not in text and ")" not in text:
        return text, {}
    base, _, rest = text.partition("(")
    base = base.strip()
    if not base or not rest.endswith(")"):
        raise LRControlError(f"task {text!r}: write arguments like letter-logreg(batch=64, epochs=100)")
    try:
        call = ast.parse(f"_({rest}", mode="eval").body
    except SyntaxError as exc:
        raise LRControlError(f"task {text!r}: cannot parse its arguments ({exc.msg})") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise LRControlError(f"task {text!r}: task arguments are keywords only, e.g. {base}(batch=64)")
    given: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg in given:
            raise LRControlError(f"task {text!r}: {keyword.arg!r} is given twice")
        try:
            given[keyword.arg] = _literal(keyword.value, f"{base}({keyword.arg}=…)")
        except SpecError as exc:
            raise LRControlError(f"task {text!r}: {exc}") from None
    return base, given


def applicable(task: Any) -> list[TaskParam]:
    return [p for p in TASK_PARAMS if task.family in p.families and p.applies(task)]


def with_params(task: Any, given: dict[str, Any]) -> Any:
    """The task with `given` arguments applied and its canonical name; `task` itself if none change it."""
    if not given:
        return task
    params = applicable(task)
    names = {p.name: p for p in params}
    for name in given:
        if name not in names:
            valid = ", ".join(names) or "none"
            raise LRControlError(
                f"task {task.name} takes no argument {name!r}{closest_hint(name, names)}; its arguments: {valid}"
            )
    if given.get("epochs") is not None and given.get("steps") is not None:
        raise LRControlError(f"task {task.name}: give the training length as epochs or as steps, not both")
    updates: dict[str, Any] = {}
    shown: list[tuple[str, Any]] = []
    for p in params:  # declared order: batch is set before epochs reads it
        if p.name not in given:
            continue
        try:
            value = p.param.coerce(given[p.name], task.name)
        except SpecError as exc:
            raise LRControlError(str(exc)) from None
        if value is None:
            continue
        current = dataclasses.replace(task, **updates) if updates else task
        change = p.fields(current, value)
        if p.param.default is None and all(getattr(current, k) == v for k, v in change.items()) and p.name != "epochs":
            continue  # equal to the task's own value: the same task, the same name
        if p.param.default is not None and value == p.param.default:
            continue
        updates.update(change)
        shown.append((p.name, value))
    if not shown:
        return task
    from lrcontrol.spec import format_value

    name = f"{task.name}({', '.join(f'{k}={format_value(v)}' for k, v in shown)})"
    return dataclasses.replace(task, name=name, **updates)
