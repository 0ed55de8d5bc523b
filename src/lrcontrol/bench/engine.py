"""The run engine: train one (task, method spec, seed, budget) and return its `Trajectory`.

The loop is plain on purpose (nanoGPT style) — every feature lives in a piece it calls:

    optimizer, controller = lrcontrol.build(model.parameters(), spec, total_steps=horizon, resources=…)
    for t in range(start, budget):
        loss = instance.loss(model, next(batches)); loss.backward(); optimizer.step()
        controller.step(loss)
        if divergence: stop                      # an outcome, never an exception
        if (t + 1) % eval_every == 0: evaluate → controller.report(val_loss=…, val_acc=…)
    test metrics at the end

Determinism: the model comes from `task.build(seed)`, the batch stream from a `torch.Generator`
seeded with `seed`, torch's global RNG is seeded with `seed` (dropout and the like), and every
evaluation runs under `fork_rng` so it never moves the training RNG. One thread per worker is the
caller's choice (`torch.set_num_threads(1)`; the sweep workers and the CLI set it).

Checkpoints (`checkpoint=path`) hold the model, optimizer, controller, the global RNG and the
trajectory so far, written atomically (temporary file, fsync, rename). Resuming rebuilds the batch
iterator from the seed and skips the batches already consumed, which replays the stream exactly
whatever the task's iterator keeps internally.

`auto()` (lrcontrol.select.auto): the task is probed on its own model copy, the chosen member trained; the
trajectory keeps the spec "auto()", counts the probe in `extra_steps` and names the choice in its
observables; the checkpoint keeps the choice, so a resumed run never probes again.

Extending a finished run from budget B to 2B: the controller is rebuilt with total_steps = horizon.
Horizon-free methods (constant, plateau, bold driver, online rules, LR-free optimizers) then match
an uninterrupted 2B run exactly. Horizon-based schedules (cosine, warmup(0.05), …) only match if the
first B steps were already run with the final horizon: pass `horizon=2B, budget=B`. Extending with
a horizon that changes re-plans the decay from the step where it resumes (docs/benchmark.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import lrcontrol

# checkpoints live in their own module; these names stay importable from the engine
from lrcontrol.bench.checkpoint import (  # noqa: E402,F401
    CHECKPOINT_KEYS,
    BadCheckpointError,
    fault_point,
    load_checkpoint,
    save_checkpoint,
    set_aside,
)
from lrcontrol.control.batch import batch_multiplier, batches_consumed, resolve_batch_size
from lrcontrol.errors import LRControlError, LROutOfRangeError
from lrcontrol.optim.modes import eval_mode, has_modes
from lrcontrol.select.method import AUTO_SPEC

#: most training-loss points a trajectory keeps; longer runs record every 2^k-th step
MAX_POINTS = 1024
#: a loss this many times the first step's loss counts as divergence
DIVERGENCE_FACTOR = 100.0


@dataclass
class Trajectory:
    """What one run produced. Plain data: lists of numbers, JSON-serialisable via `to_dict`.

    train_steps / train_loss / lrs / effective_lrs: every `stride`-th step (1-based step count after
    the update), lrs and effective_lrs one value per param group. eval_steps / val: the validation
    metrics after those steps (step 0 = the initial model). test: test metrics of the final model.
    """

    task: str
    spec: str
    seed: int
    budget: int
    horizon: int
    stride: int = 1
    steps: int = 0
    train_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lrs: list[list[float]] = field(default_factory=list)
    effective_lrs: list[list[float]] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    initial_loss: float | None = None
    diverged: bool = False
    diverged_step: int | None = None
    diverged_reason: str = ""
    extra_steps: int = 0
    wall_time: float = 0.0  # seconds of training and evaluation (building the model and optimizer excluded)
    observables: dict[str, Any] = field(default_factory=dict)
    #: final metrics on the training split, for tasks with train_metric=True (empty otherwise)
    train: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.diverged or self.steps >= self.budget

    def final_val(self) -> dict[str, float]:
        return dict(self.val[-1]) if self.val else {}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["train"]:
            del data["train"]  # runs without training-split metrics store exactly what they stored before
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        return cls(**data)

    def rethin(self, stride: int) -> None:
        """Keep only training points on multiples of a (larger, power-of-two) stride."""
        keep = [i for i, s in enumerate(self.train_steps) if s % stride == 0]
        self.train_steps = [self.train_steps[i] for i in keep]
        self.train_loss = [self.train_loss[i] for i in keep]
        self.lrs = [self.lrs[i] for i in keep]
        self.effective_lrs = [self.effective_lrs[i] for i in keep]
        self.stride = stride


def stride_for(budget: int) -> int:
    """The smallest power of two that keeps at most MAX_POINTS training points (so B → 2B re-thins exactly)."""
    stride = 1
    while budget // stride > MAX_POINTS:
        stride *= 2
    return stride


def _finite_params(model: torch.nn.Module) -> bool:
    params = [p.detach() for p in model.parameters()]
    norms = torch._foreach_norm(params) if params else []
    return all(math.isfinite(float(n)) for n in norms)


def _evaluate(instance: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer, split: str) -> dict[str, float]:
    """Evaluate without disturbing training: a run evaluated at more points (one extended from B,
    whose B run ended with an extra evaluation) must still train exactly like one that was not.

    fork_rng: evaluations (noisy functions draw fresh noise) never move the training RNG.
    Schedule-Free's eval()/train() swap the parameters with a lerp that is not exactly invertible in
    floating point, so the parameters are restored bit for bit afterwards.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = [p.detach().clone() for p in params] if has_modes(optimizer) else None
    with torch.random.fork_rng(devices=[]), eval_mode(optimizer):
        metrics = {k: float(v) for k, v in instance.evaluate(model, split).items()}
    if saved is not None:
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
    return metrics


def run(
    task: Any,
    spec: str,
    seed: int,
    budget: int | None = None,
    *,
    horizon: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_seconds: float = 30.0,
    bad_checkpoint: str = "set_aside",
) -> Trajectory:
    """Train `task` with the method `spec` for `budget` steps (default: the task's) from `seed`.

    horizon: the run length the controller plans for (total_steps), default the budget.
    checkpoint: a file to resume from if it exists and to save to — at evaluations at most every
    `checkpoint_seconds` (0: at every evaluation) and at the end, so a finished run can be extended
    by calling `run` again with a larger budget and the same checkpoint.
    bad_checkpoint: what to do with a checkpoint that is corrupt, foreign or another run's:
    "set_aside" (rename it to `<name>.rejected`, warn on stderr, and start over: what a sweep's own
    checkpoints need) or "raise" (BadCheckpointError: what `lrcontrol run --checkpoint FILE` uses).
    """
    if bad_checkpoint not in ("raise", "set_aside"):
        raise LRControlError(f"bad_checkpoint must be 'raise' or 'set_aside', got {bad_checkpoint!r}")
    try:
        return _run(task, spec, seed, budget, horizon, checkpoint, checkpoint_seconds)
    except BadCheckpointError as exc:
        if bad_checkpoint == "raise" or checkpoint is None or not Path(checkpoint).is_file():
            raise
        set_aside(Path(checkpoint), str(exc))
        return _run(task, spec, seed, budget, horizon, checkpoint, checkpoint_seconds)


def _run(
    task: Any,
    spec: str,
    seed: int,
    budget: int | None,
    horizon: int | None,
    checkpoint: str | Path | None,
    checkpoint_seconds: float,
) -> Trajectory:
    budget = task.budget if budget is None else budget
    horizon = budget if horizon is None else horizon
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise LRControlError(f"budget must be a positive number of steps, got {budget!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < budget:
        raise LRControlError(f"horizon must be an integer number of steps ≥ the budget ({budget}), got {horizon!r}")
    saved = load_checkpoint(checkpoint) if checkpoint is not None else None
    parsed = lrcontrol.parse(spec)
    choice = None
    if parsed.whole is not None:  # auto(): probe and choose (or read the choice back), then train the member
        from lrcontrol.select.auto import choice_for_run

        choice = choice_for_run(task, seed, horizon, saved, checkpoint)
        parsed = lrcontrol.parse(choice.spec)
    instance = task.build(seed)
    model = instance.model
    resources = {
        "model": model,
        "loss_fn": lambda batch: instance.loss(model, batch),
        "train_batches": lambda: instance.train_batches(torch.Generator().manual_seed(seed)),
        "task": task,
    }
    # The model itself (not .parameters()): discriminative() needs the parameters' names; and the task's
    # batch size written into batch_scale(), so the stored spec says what its LR was scaled to.
    spec = resolve_batch_size(parsed, task.batch_size)
    name = AUTO_SPEC if choice is not None else str(spec)  # an auto() run is stored as "auto()"
    try:
        optimizer, controller = lrcontrol.build(model, spec, total_steps=horizon, resources=resources)
    except LROutOfRangeError as exc:  # the very first LR is out of torch's range: diverged before step 1
        trajectory = Trajectory(task.key, name, seed, budget, horizon, stride=stride_for(budget))
        trajectory.diverged, trajectory.diverged_step, trajectory.diverged_reason = True, 0, str(exc)
        if choice is not None:
            trajectory.extra_steps, trajectory.observables = choice.probe_steps, choice.observables()
        return trajectory
    # The clock starts after building: a process's first optimizer imports torch._dynamo (seconds),
    # which is not the method's cost.
    started = time.perf_counter()
    trajectory = Trajectory(task.key, name, seed, budget, horizon, stride=stride_for(budget))
    if choice is not None:
        trajectory.wall_time = choice.probe_seconds  # the probe is part of the method's cost
    torch.manual_seed(seed)

    if saved is not None:
        if (saved["task"], saved["spec"], saved["seed"]) != (task.key, name, seed):
            raise BadCheckpointError(
                f"checkpoint {checkpoint} belongs to another run ({saved['task']!s:.80}, {saved['spec']!s:.200})"
            )
        if not isinstance(saved["steps"], int) or saved["steps"] > budget:
            raise BadCheckpointError(
                f"checkpoint {checkpoint} is {saved['steps']!s:.20} steps in, past the budget {budget}"
            )
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            controller.load_state_dict(saved["controller"])
            torch.set_rng_state(saved["rng"])
            previous = Trajectory.from_dict(saved["trajectory"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BadCheckpointError(f"checkpoint {checkpoint} does not fit this run ({first})") from None
        if previous.diverged or (previous.steps == budget and previous.budget == budget):
            return previous
        # Evaluations added only because the old budget ended there are not part of a longer run.
        keep = [i for i, s in enumerate(previous.eval_steps) if s % task.eval_every == 0]
        trajectory.eval_steps = [previous.eval_steps[i] for i in keep]
        trajectory.val = [previous.val[i] for i in keep]
        # (not `name`: the checkpoints written from here on record the run's spec under that name)
        for field in ("train_steps", "train_loss", "lrs", "effective_lrs", "initial_loss", "steps", "wall_time"):
            setattr(trajectory, field, getattr(previous, field))
        trajectory.rethin(trajectory.stride)
    start = trajectory.steps
    wall_offset = trajectory.wall_time

    def snapshot() -> None:
        trajectory.wall_time = wall_offset + time.perf_counter() - started
        state = {"task": task.key, "spec": name, "seed": seed, "steps": trajectory.steps}
        if choice is not None:
            state["auto"] = choice.to_dict()  # a resumed auto() run trains the same member without probing again
        state.update(model=model.state_dict(), optimizer=optimizer.state_dict(), controller=controller.state_dict())
        state.update(rng=torch.get_rng_state(), trajectory=trajectory.to_dict())
        save_checkpoint(checkpoint, state)

    if start == 0:
        trajectory.eval_steps.append(0)
        trajectory.val.append(_evaluate(instance, model, optimizer, "val"))
    batches = instance.train_batches(torch.Generator().manual_seed(seed))
    for _ in range(batches_consumed(controller, start)):
        next(batches)
    last_saved = time.perf_counter()
    model.train()

    for t in range(start, budget):
        optimizer.zero_grad(set_to_none=True)
        accumulate = batch_multiplier(controller, t)  # > 1 only under increase_batch(): a k-times batch
        if accumulate == 1:
            loss = instance.loss(model, next(batches))
            loss.backward()
        else:
            losses = [instance.loss(model, next(batches)) / accumulate for _ in range(accumulate)]
            for part in losses[:-1]:
                part.backward()
            losses[-1].backward()
            loss = torch.stack([part.detach() for part in losses]).sum()
        lr_error = _step_optimizer(optimizer)
        record = (t + 1) % trajectory.stride == 0 or t + 1 == budget
        if record:
            # what this step used (a finder sets it in a hook), read before the controller moves the LR
            # for the next step; the effective LR (LR × an LR-free optimizer's estimate) at the same moment
            lrs = [float(group["lr"]) for group in optimizer.param_groups]
            effective_lrs = controller.effective_lrs()
        if lr_error is None:
            lr_error = _guarded(controller.step, loss)
        value = float(loss.detach())
        trajectory.steps = t + 1
        if trajectory.initial_loss is None:
            trajectory.initial_loss = value
        if record:
            trajectory.train_steps.append(t + 1)
            trajectory.train_loss.append(value)
            trajectory.lrs.append(lrs)
            trajectory.effective_lrs.append(effective_lrs)
        reason = lr_error or _divergence(value, trajectory.initial_loss)
        evaluate_now = (t + 1) % task.eval_every == 0
        if reason is None and (evaluate_now or t + 1 == budget) and not _finite_params(model):
            reason = "non-finite parameters"
        if reason is None and (evaluate_now or t + 1 == budget):
            metrics = _evaluate(instance, model, optimizer, "val")
            trajectory.eval_steps.append(t + 1)
            trajectory.val.append(metrics)
            if not all(math.isfinite(v) for v in metrics.values()):
                reason = "non-finite validation metrics"
            elif evaluate_now:
                # Only regular evaluations reach the controller: the extra one at the end of a budget
                # must not change what a longer run would have done.
                reason = _guarded(controller.report, {f"val_{k}": v for k, v in metrics.items()})
        if reason is not None:
            trajectory.diverged, trajectory.diverged_step, trajectory.diverged_reason = True, t + 1, reason
            break
        # Not at the last step: the final checkpoint, with the test metrics, is written below, and a
        # checkpoint at the budget must always be a complete run.
        periodic = evaluate_now and t + 1 < budget and time.perf_counter() - last_saved >= checkpoint_seconds
        if checkpoint is not None and periodic:
            snapshot()
            last_saved = time.perf_counter()
        fault_point(f"step-{t + 1}")

    if not trajectory.diverged:
        trajectory.test = _evaluate(instance, model, optimizer, "test")
        if getattr(task, "train_metric", False):
            trajectory.train = _evaluate(instance, model, optimizer, "train")
    trajectory.extra_steps = controller.extra_steps + (choice.probe_steps if choice is not None else 0)
    trajectory.observables = _plain(controller.observables())
    if choice is not None:
        trajectory.observables.update(choice.observables())
    trajectory.wall_time = wall_offset + time.perf_counter() - started
    if checkpoint is not None:
        snapshot()
    controller.close()
    return trajectory


def _step_optimizer(optimizer: torch.optim.Optimizer) -> str | None:
    """optimizer.step(); an LR torch cannot convert to the parameters' dtype is a divergence, not a crash."""
    try:
        optimizer.step()
    except LROutOfRangeError as exc:  # a controller's hook (an LR finder) moved the LR out of range
        return str(exc)
    except RuntimeError as exc:
        if "without overflow" not in str(exc):
            raise
        return f"the LR overflowed in the optimizer step ({exc})"
    return None


def _guarded(call: Any, argument: Any) -> str | None:
    """Call the controller; an LR driven to 0 or past torch's range ends the run as diverged (the reason)."""
    try:
        call(argument)
    except LROutOfRangeError as exc:
        return str(exc)
    return None


def _divergence(loss: float, initial: float | None) -> str | None:
    if not math.isfinite(loss):
        return "non-finite training loss"
    if initial is not None and math.isfinite(initial) and loss > DIVERGENCE_FACTOR * max(abs(initial), 1e-12):
        return f"training loss {loss:.3g} > {DIVERGENCE_FACTOR:g} × the initial {initial:.3g}"
    return None


def _plain(value: Any) -> Any:
    """Observables as JSON-friendly numbers (tensors and tuples become floats and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
