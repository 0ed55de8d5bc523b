"""Features of a training job for algorithm selection: static meta-features and counted probes.

Two entry points give the same feature names (`FEATURES`, in a fixed order):

- for a task: `task_features(task, seed)` = `static_features(task)` (from `task.meta_features()`, no
  training) + `probe(task, seed)` (the task built from `seed`; the same seed gives the same numbers,
  bit for bit);
- for a loop the user already has: `probe_loop(model, loss_fn, batches, total_steps, seed=0, hints=…)`.
  A plain loop knows the model's parameters, the run length, and what its first batch shows (batch size,
  input dimension, input scale); the number of examples (and classes) when `batches` is a DataLoader over
  a sized data set (that names its `classes`, as torchvision's do); kind, family and model type only when
  given as `hints` (e.g. `hints={"examples": 60000, "classes": 10, "kind": "classification"}`), else NaN.

Every feature is a float; NaN means unavailable (a noiseless function has no input scale, a plain loop
without hints no example count). Sizes are log-scaled (log₁₀, the batch log₂); categories one-hot.
The probes (`lrcontrol.select.probes`) spend about 8 % of the run's budget (at least 10 steps from 40 on); their
cost is returned in steps and in full-run equivalents (steps / budget), and they put the model, its
optimizer state and every RNG back as they found them. docs/selection-features.md lists the features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lrcontrol.errors import LRControlError
from lrcontrol.select.probes import FRACTION, ProbePlan, run_probes


@dataclass(frozen=True)
class Feature:
    """One feature: its name, whether a plain loop (no task, no hints) can compute it, and what it is."""

    name: str
    plain: bool
    source: str  # "static" (no training) or "probe" (counted steps, or the first batch)
    description: str


FAMILIES = ("synthetic", "tabular", "image", "sequence", "language")
KINDS = ("function", "classification", "language_model")
MODELS = ("logreg", "mlp", "cnn", "transformer")
#: hints a plain loop may give (what `Task.meta_features()` holds for a task)
HINTS = (
    "examples",
    "classes",
    "input_dim",
    "batch_size",
    "kind",
    "family",
    "model",
    "class_imbalance",
    "pretrained",
    "label_noise",
)

# fmt: off
FEATURES: tuple[Feature, ...] = (
    Feature("log_params", True, "static", "log₁₀ trainable parameters"),
    Feature("log_budget", True, "static", "log₁₀ training length in steps"),
    Feature("log_batch", True, "static", "log₂ batch size (a plain loop: the first batch's leading dimension)"),
    Feature("log_input_dim", True, "static", "log₁₀ input dimension (a plain loop: the first batch's input, per example)"),
    Feature("log_examples", False, "static", "log₁₀(1 + training examples); 0 for a synthetic function"),
    Feature("log_classes", False, "static", "log₁₀(1 + classes or vocabulary); 0 for a synthetic function"),
    Feature("log_epochs", False, "static", "log₁₀ passes over the training set (steps × batch / examples); NaN without data"),
    Feature("log_params_per_example", False, "static", "log₁₀(parameters / examples): over-parameterisation"),
    Feature("log_class_imbalance", False, "static", "log₁₀(largest / smallest class); NaN where not given"),
    Feature("pretrained", False, "static", "1 if the model starts from pretrained weights"),
    Feature("label_noise", False, "static", "fraction of training labels replaced by a wrong class; NaN without labels"),
    *(Feature(f"kind_{k}", False, "static", f"1 if the task is a {k.replace('_', ' ')}") for k in KINDS),
    *(Feature(f"family_{f}", False, "static", f"1 if the task is of the {f} family") for f in FAMILIES),
    *(Feature(f"model_{m}", False, "static", f"1 if the model is a {m}") for m in MODELS),
    Feature("log_matrices", True, "probe", "log₂(1 + weight matrices): parameter tensors with ≥ 2 dimensions (depth)"),
    Feature("log_input_rms", True, "probe", "log₁₀ RMS of the first batch's floating-point inputs (0 steps; NaN for tokens)"),
    Feature("log_init_loss", True, "probe", "sign·log₁₀(1 + |loss|) at the start (noise probe's batches)"),
    Feature("log_grad_norm", True, "probe", "log₁₀ ‖mean batch gradient‖ at the start"),
    Feature("log_grad_rms", True, "probe", "log₁₀ of that norm / √parameters (per-coordinate gradient scale)"),
    Feature("grad_noise_fraction", True, "probe", "tr Σ_B / (tr Σ_B + |G|²): share of a batch gradient that is noise"),
    Feature("log_grad_noise", True, "probe", "log₁₀(tr Σ_B / |G|²) = log₁₀(B_simple / B), McCandlish et al. 2018; clipped to ±4"),
    Feature("finder_log_lr", True, "probe", "log₁₀ of the LR range test's recommended LR (Adam, 1e-6…10)"),
    Feature("finder_log_lr_min", True, "probe", "log₁₀ LR at the minimum of the loss trend"),
    Feature("finder_fall_start", True, "probe", "log₁₀ LR where the loss has made 10 % of its fall"),
    Feature("finder_valley_width", True, "probe", "decades of LR from 10 % to 90 % of the fall"),
    Feature("finder_steepness", True, "probe", "steepest slope of the trend per decade of LR, relative to the start loss"),
    Feature("finder_drop", True, "probe", "relative drop of the trend from its start to its minimum"),
    Feature("finder_spread", True, "probe", "decades between the largest and smallest suggestion"),
    Feature("finder_overshoot", True, "probe", "decades from the minimum to the last LR the sweep reached"),
    Feature("finder_diverged", True, "probe", "1 if the sweep stopped at divergence"),
    Feature("finder_confident", True, "probe", "1 if the finder trusts its curve"),
    Feature("adam_loss_rate", True, "probe", "relative loss change per 100 steps of Adam(lr=1e-3) + CLARA"),
    Feature("adam_diverged", True, "probe", "1 if that probe met a non-finite loss"),
    Feature("clara_ratio", True, "probe", "CLARA's mean path ratio R over the probe's second half (≈ 1 on noise)"),
    Feature("clara_z", True, "probe", "CLARA's mean noise-normalised path statistic z, second half (> 0: LR too small)"),
    Feature("clara_lr_move", True, "probe", "log₁₀ of how far CLARA moved the LR during the probe"),
    Feature("prodigy_log_d", True, "probe", "log₁₀ of Prodigy's step-size estimate d after the probe"),
    Feature("prodigy_loss_rate", True, "probe", "relative loss change per 100 steps of Prodigy"),
    Feature("prodigy_diverged", True, "probe", "1 if Prodigy's probe met a non-finite loss"),
)
# fmt: on
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
STATIC_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.source == "static")
PLAIN_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.plain)
_PROBE_NAMES = tuple(f.name for f in FEATURES if f.source == "probe")
#: the one-hot names of the task's family, kind and model type: they say which kind of task it is, not how
#: it trains — on a family never seen in training they are constant (all zero, or one column never set),
#: so a selector that leans on them cannot transfer to it
IDENTITY_NAMES: tuple[str, ...] = tuple(n for n in STATIC_NAMES if n.startswith(("kind_", "family_", "model_")))
#: every feature but the identity ones (what the held-out evaluation's "transferable features" entries read)
TRANSFER_NAMES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in IDENTITY_NAMES)


@dataclass(frozen=True)
class Probe:
    """What probing found: `features` (every name of FEATURES), the steps it cost, and the run's budget.

    steps: the steps each probe took ("noise", "finder", "clara", "prodigy"); at most `plan`'s, fewer
    where a probe stopped early (a sweep that diverged, a loss that became non-finite)."""

    features: dict[str, float]
    cost_steps: int
    budget: int
    steps: dict[str, int] = field(default_factory=dict)
    plan: ProbePlan | None = field(default=None, compare=False)

    @property
    def cost(self) -> float:
        """The probe's cost in full-run equivalents (steps / the run's budget)."""
        return self.cost_steps / self.budget


def _log10(value: Any, offset: float = 0.0) -> float:
    if value is None:
        return math.nan
    value = float(value) + offset
    return math.log10(value) if value > 0 and math.isfinite(value) else math.nan


def _one_hot(prefix: str, choices: tuple[str, ...], value: Any) -> dict[str, float]:
    if value is None:
        return {f"{prefix}_{c}": math.nan for c in choices}
    return {f"{prefix}_{c}": float(value == c) for c in choices}


def features_from_meta(meta: Mapping[str, Any]) -> dict[str, float]:
    """The static features (STATIC_NAMES) from a meta-feature mapping; missing entries give NaN."""
    params, budget, batch = meta.get("params"), meta.get("budget"), meta.get("batch_size")
    examples = meta.get("examples")
    kind = meta.get("kind")
    has_data = examples is not None and float(examples) > 0
    epochs = float(budget) * float(batch) / float(examples) if has_data and budget and batch else None
    out = {
        "log_params": _log10(params),
        "log_budget": _log10(budget),
        "log_batch": math.log2(float(batch)) if batch else math.nan,
        "log_input_dim": _log10(meta.get("input_dim")),
        "log_examples": _log10(examples, 1.0),
        "log_classes": _log10(meta.get("classes"), 1.0),
        "log_epochs": _log10(epochs),
        "log_params_per_example": _log10(float(params) / float(examples)) if has_data and params else math.nan,
        "log_class_imbalance": _log10(meta.get("class_imbalance")),
        # pretrained is a flag that tasks set only when true; a known task without it is not pretrained
        "pretrained": float(meta.get("pretrained", 0 if kind is not None else math.nan)),
        "label_noise": float(meta["label_noise"]) if meta.get("label_noise") is not None else math.nan,
    }
    out.update(_one_hot("kind", KINDS, kind))
    out.update(_one_hot("family", FAMILIES, meta.get("family")))
    # a function's "model" is the point itself: no model type applies
    model = meta.get("model", "none" if kind == "function" else None)
    out.update(_one_hot("model", MODELS, model))
    return out


def static_features(task: Any) -> dict[str, float]:
    """Static features of a task (no training): STATIC_NAMES from `task.meta_features()`."""
    from lrcontrol.tasks.base import CORE_META_KEYS, Task

    if not isinstance(task, Task):
        raise LRControlError(
            f"static_features needs a Task (lrcontrol.tasks.get_task(name)), got {type(task).__name__}"
        )
    try:
        meta = task.meta_features()
    except NotImplementedError:
        raise LRControlError(
            f"task {task.name} has no meta-features (its Task class defines no meta_features())"
        ) from None
    missing = [k for k in CORE_META_KEYS if k not in meta]
    if missing:
        raise LRControlError(f"task {task.name}: its meta_features() lacks {', '.join(missing)}")
    if "label_noise" not in meta and hasattr(task, "label_noise"):  # a task argument of the labelled families
        meta = {**meta, "label_noise": task.label_noise}
    return features_from_meta(meta)


def _complete(static: dict[str, float], probed: dict[str, float]) -> dict[str, float]:
    """Every FEATURES name in order: static ones from `static`, probe ones from `probed`."""
    merged = {**static, **{k: v for k, v in probed.items() if k in _PROBE_NAMES}}
    return {name: float(merged.get(name, math.nan)) for name in FEATURE_NAMES}


def probe(task: Any, seed: int = 0, *, budget: int | None = None, fraction: float = FRACTION) -> Probe:
    """Static and probe features of a task built from `seed` (deterministic), for a run of `budget` steps
    (default: the task's). The built model is discarded afterwards; its probe cost is in the result."""
    import torch

    static = static_features(task)
    total = task.budget if budget is None else budget
    instance = task.build(seed)
    model = instance.model
    probed, steps, lengths = run_probes(
        model,
        lambda batch: instance.loss(model, batch),
        lambda: instance.train_batches(torch.Generator().manual_seed(seed)),
        total,
        seed=seed,
        fraction=fraction,
    )
    if budget is not None:
        static["log_budget"] = _log10(budget)
        if not math.isnan(static["log_epochs"]):
            static["log_epochs"] += math.log10(budget / task.budget)
    return Probe(_complete(static, probed), sum(steps.values()), total, steps, lengths)


def task_features(task: Any, seed: int = 0, **options: Any) -> dict[str, float]:
    """`probe(task, seed).features` plus `probe_cost` (full-run equivalents): one row of features.parquet."""
    result = probe(task, seed, **options)
    return {**result.features, "probe_cost": result.cost}


def _check_hints(hints: Mapping[str, Any]) -> None:
    unknown = [k for k in hints if k not in HINTS]
    if unknown:
        raise LRControlError(f"probe_loop: unknown hint {unknown[0]!r}; hints are {', '.join(HINTS)}")
    for key, choices in (("kind", KINDS), ("family", FAMILIES), ("model", MODELS)):
        if key in hints and hints[key] not in choices:
            raise LRControlError(f"probe_loop: hint {key}={hints[key]!r}; choose one of {', '.join(choices)}")
    noise = hints.get("label_noise")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1):
        raise LRControlError(f"probe_loop: hint label_noise must be a fraction in [0, 1), got {noise!r}")
    for key in ("examples", "classes", "input_dim", "batch_size", "class_imbalance"):
        value = hints.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise LRControlError(f"probe_loop: hint {key} must be a positive number, got {value!r}")


def _dataset_meta(batches: Any) -> dict[str, int]:
    """What a DataLoader-like `batches` says about its data without iterating it: `examples` =
    len(batches.dataset) for a sized data set, `classes` = len(dataset.classes) where the data set names
    them (torchvision's do). Nothing is guessed from the batches: a label range seen in a few batches would
    undercount classes, a stream has no size."""
    dataset = getattr(batches, "dataset", None)
    out: dict[str, int] = {}
    try:
        examples = len(dataset)  # type: ignore[arg-type]
    except TypeError:  # no data set, or an iterable one without a length
        return out
    if isinstance(examples, int) and examples > 0:
        out["examples"] = examples
    classes = getattr(dataset, "classes", None)
    if isinstance(classes, (list, tuple)) and len(classes) > 1:
        out["classes"] = len(classes)
    return out


def probe_loop(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    batches: Callable[[], Iterator[Any]] | Any,
    total_steps: int,
    *,
    seed: int = 0,
    hints: Mapping[str, Any] | None = None,
    fraction: float = FRACTION,
) -> Probe:
    """Features of a plain training loop: `model`, `loss_fn(batch) -> scalar loss`, `batches` (a callable
    returning a fresh iterator, or a re-iterable), the planned `total_steps`. `hints` add what the loop
    cannot see (HINTS: examples, classes, kind, …); a DataLoader over a sized data set gives the examples
    (and its named classes) by itself. Everything the probes touch is put back."""
    hints = dict(hints or {})
    _check_hints(hints)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise LRControlError(f"probe_loop: total_steps must be a positive integer, got {total_steps!r}")
    if not isinstance(model, torch.nn.Module):
        raise LRControlError(f"probe_loop needs the model (an nn.Module), got {type(model).__name__}")
    probed, steps, lengths = run_probes(model, loss_fn, batches, total_steps, seed=seed, fraction=fraction)
    meta: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    meta["budget"] = total_steps
    if not math.isnan(probed["log_batch"]):
        meta["batch_size"] = round(2 ** probed["log_batch"])
    if not math.isnan(probed["log_input_dim"]):
        meta["input_dim"] = round(10 ** probed["log_input_dim"])
    meta.update(_dataset_meta(batches))
    meta.update(hints)  # what the user says wins over what the loader shows
    return Probe(_complete(features_from_meta(meta), probed), sum(steps.values()), total_steps, steps, lengths)
