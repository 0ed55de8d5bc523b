"""Sweeps: a TOML file declares tasks × methods × an initial-LR grid × seeds × budget.

    name = "smoke"
    size = "smoke"                      # task size tier: "smoke" or "default"
    seeds = [0, 1, 2]                   # or a count: seeds = 3
    lrs = [0.01, 0.1]                   # the LR grid, applied to each method's optimizer
    budget = 100                        # optional: every task's budget (default: each task's own)
    include = ["other.toml"]            # optional: other sweeps whose runs are added to this one
    tasks = ["sphere-10", { name = "rosenbrock-10", budget = 200 }]
    methods = ["sgd + constant()", "adamw + warmup(0.05) + cosine()", { spec = "prodigy", lrs = [1.0] }, "auto()"]
    # a tuned method: a search space and its tuner (lrcontrol.tune), run per task and seed
    methods = [{ tune = "adamw(lr=loguniform(1e-4, 1))", strategy = "smac-mf", trials = 20 }]

`load_sweep` validates everything before anything runs — TOML, names (with the closest match),
grids, seeds, budgets (each method is built at each budget so horizon errors surface now), and that
each task's data is there — and raises LRControlError with one line naming the file, the entry and
the fix. `expand` gives the runs; duplicates (an included suite overlapping) are dropped by key.
Each run is a `RunSpec` (`lrcontrol.bench.run_spec`). Executing them is `lrcontrol.bench.sweep_runner`'s
job, on an executor (`lrcontrol.bench.executor`).
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrcontrol.bench.run_spec import RunSpec, check_budget, is_whole_number
from lrcontrol.errors import LRControlError
from lrcontrol.limits import MAX_GRID, MAX_LR, MAX_RUNS, MAX_SEED, MAX_SEEDS, MAX_SWEEP_FILE_BYTES, MIN_LR

#: sweep names become file names (results/<name>.db): one plain name, never a path
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
TOP_KEYS = ("name", "description", "size", "seeds", "lrs", "budget", "include", "tasks", "methods")
TASK_KEYS = ("name", "budget", "size")
METHOD_KEYS = ("spec", "lrs")
TUNE_KEYS = ("tune", "strategy", "trials", "objective", "prior", "min_budget", "eta", "batch")


@dataclass(frozen=True)
class Group:
    """One product of tasks × methods × LRs × seeds from one file (a sweep is a list of them)."""

    source: str
    tasks: tuple[tuple[str, str, int], ...]  # (name, size, budget)
    # (spec without a chosen lr, its LR grid); a whole method (auto()) has the grid (nan,): one run, no LR to set
    methods: tuple[tuple[str, tuple[float, ...]], ...]
    seeds: tuple[int, ...]
    tuned: tuple[Any, ...] = ()  # lrcontrol.tune.tuner.TuneSettings of the tuned methods


@dataclass(frozen=True)
class TuneJob:
    """One tuned method on one task and seed: a tune, run by the coordinator, its trials by the executor."""

    task: str
    size: str
    budget: int
    seed: int
    settings: Any  # TuneSettings
    sweep: str = ""


@dataclass(frozen=True)
class Sweep:
    name: str
    path: str
    groups: tuple[Group, ...]

    def runs(self) -> list[RunSpec]:
        return expand(self)

    def tunes(self) -> list[TuneJob]:
        """Every (task, tuned method, seed), in a stable order; duplicates dropped."""
        jobs: dict[tuple, TuneJob] = {}
        for group in self.groups:
            for name, size, budget in group.tasks:
                for settings in group.tuned:
                    for seed in group.seeds:
                        jobs.setdefault(
                            (name, size, budget, settings.name, seed),
                            TuneJob(name, size, budget, seed, settings, self.name),
                        )
        return list(jobs.values())


def _close(word: str, choices: Any) -> str:
    hint = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _check_lrs(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise LRControlError(f"{where}: lrs must be a non-empty list of positive numbers, e.g. lrs = [0.01, 0.1]")
    if len(value) > MAX_GRID:
        raise LRControlError(f"{where}: lrs has {len(value)} values; the limit is {MAX_GRID} per grid")
    out = []
    for lr in value:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise LRControlError(f"{where}: every lr must be a positive finite number, got {lr!r}")
        if not MIN_LR <= lr <= MAX_LR:
            raise LRControlError(f"{where}: lr {lr:g} is outside [{MIN_LR:g}, {MAX_LR:g}], where torch can apply it")
        out.append(float(lr))
    if len(set(out)) != len(out):
        raise LRControlError(f"{where}: lrs lists a value twice ({value}); each grid point once")
    return tuple(out)


def _check_seeds(value: Any, where: str) -> tuple[int, ...]:
    if is_whole_number(value):
        if value < 1:
            raise LRControlError(f"{where}: seeds = {value}; give a count ≥ 1 or a list like [0, 1, 2]")
        if value > MAX_SEEDS:
            raise LRControlError(f"{where}: seeds = {value} is over the limit of {MAX_SEEDS} seeds; is it a typo?")
        return tuple(range(value))
    if not isinstance(value, list) or not value or not all(is_whole_number(s) and s >= 0 for s in value):
        raise LRControlError(f"{where}: seeds must be a count or a non-empty list of integers ≥ 0, got {value!r}")
    if len(value) > MAX_SEEDS:
        raise LRControlError(f"{where}: seeds lists {len(value)} seeds; the limit is {MAX_SEEDS}")
    too_big = [s for s in value if s > MAX_SEED]
    if too_big:
        raise LRControlError(
            f"{where}: seed {too_big[0]} is over 2**63 - 1 (the store keeps seeds as 64-bit integers); use a smaller seed"
        )
    if len(set(value)) != len(value):
        raise LRControlError(f"{where}: seeds lists a seed twice ({value})")
    return tuple(value)


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise LRControlError(f"{where}: unknown key {key!r}{_close(key, allowed)}; allowed: {', '.join(allowed)}")


def _read_toml(path: Path) -> dict[str, Any]:
    if "\x00" in str(path):
        raise LRControlError(f"sweep file {str(path)!r} contains a NUL byte; give a plain file path")
    if not path.exists():
        raise LRControlError(f"sweep file {path} does not exist; e.g. lrcontrol sweep suites/smoke.toml")
    if path.is_dir():
        raise LRControlError(f"{path} is a directory; give a sweep file, e.g. suites/smoke.toml")
    if not path.is_file():  # a FIFO would block, /dev/zero never ends
        raise LRControlError(f"{path} is not a regular file (a device or a pipe?); give a sweep file")
    if path.stat().st_size > MAX_SWEEP_FILE_BYTES:
        raise LRControlError(f"{path} is {path.stat().st_size} bytes, over the {MAX_SWEEP_FILE_BYTES} of a sweep file")
    try:
        # utf-8-sig: a byte-order mark, which some Windows editors write, is not part of the TOML
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise LRControlError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise LRControlError(f"{path}: not a text file (TOML must be UTF-8)") from None
    except OSError as exc:
        raise LRControlError(f"cannot read {path}: {exc.strerror}") from None


def load_sweep(path: str | Path, size: str | None = None, budget: int | None = None) -> Sweep:
    """Read and validate a sweep file (and its includes). `size`/`budget` override the files' own."""
    path = Path(path)
    groups: list[Group] = []
    if "\x00" in str(path):
        raise LRControlError(f"sweep file {str(path)!r} contains a NUL byte; give a plain file path")
    name = _load(path.resolve(), groups, stack=(), size_override=size, budget_override=budget)
    total = sum(len(g.tasks) * sum(len(lrs) for _, lrs in g.methods) * len(g.seeds) for g in groups)
    if total > MAX_RUNS:
        raise LRControlError(f"{path.name}: {total} runs is over the limit of {MAX_RUNS} per sweep; split it")
    _check_methods_at_budgets(groups)
    _check_tasks_load(groups)
    return Sweep(name, str(path), tuple(groups))


def _load(
    path: Path, groups: list[Group], stack: tuple[Path, ...], size_override: str | None, budget_override: int | None
) -> str:
    if path in stack:
        cycle = " → ".join(p.name for p in (*stack, path))
        raise LRControlError(f"include cycle: {cycle}; a sweep cannot include itself")
    data = _read_toml(path)
    where = str(path.name)
    _check_keys(data, TOP_KEYS, where)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise LRControlError(f"{where}: name must be a non-empty string, got {name!r}")
    if not NAME_PATTERN.fullmatch(name):
        # the name is the default store's file name (results/<name>.db): a path there would escape results/
        origin = "" if "name" in data else " (taken from the file name; add a name = '…' line)"
        raise LRControlError(
            f"{where}: name {name!r}{origin} is not a plain name; use letters, digits, '.', '_', '+' and '-' "
            "(at most 100, starting with a letter or digit), e.g. name = 'quick'"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise LRControlError(f"{where}: description must be a string, got {description!r}")

    includes = data.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise LRControlError(f"{where}: include must be a list of sweep file paths, e.g. include = ['smoke.toml']")
    for inc in includes:
        if "\x00" in inc or not inc.strip():
            raise LRControlError(f"{where}: include {inc!r} is not a file path; e.g. include = ['smoke.toml']")
        target = (path.parent / inc).resolve()
        if not target.exists():
            raise LRControlError(f"{where}: included file {inc!r} does not exist (looked at {target})")
        _load(target, groups, (*stack, path), size_override, budget_override)

    has_own = "tasks" in data or "methods" in data
    if not has_own:
        if not includes:
            raise LRControlError(f"{where}: declares no tasks and no methods; add tasks = [...] and methods = [...]")
        return name
    for key in ("tasks", "methods"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise LRControlError(f"{where}: {key} must be a non-empty list, got {data.get(key)!r}")
    from lrcontrol.tasks import SIZES

    size = size_override if size_override is not None else data.get("size", "default")
    if size not in SIZES:
        raise LRControlError(f"{where}: unknown size {size!r}{_close(size, SIZES)}; choose one of {', '.join(SIZES)}")
    default_budget = data.get("budget")
    if default_budget is not None:
        check_budget(default_budget, where)
    if budget_override is not None:
        default_budget = check_budget(budget_override, "--budget")
    seeds = _check_seeds(data.get("seeds", 1), where)
    grid = _check_lrs(data["lrs"], where) if "lrs" in data else None

    tasks = tuple(_task_entry(entry, where, size, default_budget, budget_override) for entry in data["tasks"])
    if len({t[:2] for t in tasks}) != len(tasks):
        raise LRControlError(f"{where}: a task is listed twice in tasks; list each once")
    tuned = tuple(_tune_entry(e, where) for e in data["methods"] if isinstance(e, dict) and "tune" in e)
    methods = tuple(_method_entry(e, where, grid) for e in data["methods"] if not (isinstance(e, dict) and "tune" in e))
    if len({m[0] for m in methods}) != len(methods) or len({t.name for t in tuned}) != len(tuned):
        raise LRControlError(f"{where}: a method is listed twice in methods; list each once")
    groups.append(Group(where, tasks, methods, seeds, tuned))
    return name


def _task_entry(
    entry: Any, where: str, size: str, default_budget: int | None, budget_override: int | None
) -> tuple[str, str, int]:
    from lrcontrol.tasks import SIZES, get_task

    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise LRControlError(f"{where}: each task is a name or a table like {{ name = 'sphere-10', budget = 100 }}")
    _check_keys(entry, TASK_KEYS, f"{where}: task {entry['name']!r}")
    task_size = entry.get("size", size)
    if task_size not in SIZES:
        raise LRControlError(
            f"{where}: task {entry['name']!r} has unknown size {task_size!r}{_close(task_size, SIZES)}"
        )
    try:
        task = get_task(entry["name"], task_size)
    except LRControlError as exc:
        raise LRControlError(f"{where}: {exc}") from None
    budget = entry.get("budget", default_budget) if budget_override is None else budget_override
    budget = task.budget if budget is None else check_budget(budget, f"{where}: task {task.name!r}")
    return task.name, task_size, budget


def _method_entry(entry: Any, where: str, grid: tuple[float, ...] | None) -> tuple[str, tuple[float, ...]]:
    from lrcontrol.spec import parse, with_lr

    if isinstance(entry, str):
        entry = {"spec": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), str):
        raise LRControlError(
            f"{where}: each method is a spec string or a table like {{ spec = 'prodigy', lrs = [1.0] }}"
        )
    _check_keys(entry, METHOD_KEYS, f"{where}: method {entry['spec']!r}")
    try:
        spec = parse(entry["spec"])
    except LRControlError as exc:
        raise LRControlError(f"{where}: method {entry['spec']!r}: {exc}") from None
    if spec.whole is not None:  # auto(): one run per task and seed, its LR chosen per task
        if "lrs" in entry:
            raise LRControlError(f"{where}: method {entry['spec']!r} chooses its own LR per task; drop its lrs")
        from lrcontrol.select.auto import load

        try:
            load()  # a missing or broken selector fails now, not in every run
        except LRControlError as exc:
            raise LRControlError(f"{where}: method {entry['spec']!r}: {exc}") from None
        return str(spec), (math.nan,)
    if spec.optimizer is None:
        raise LRControlError(
            f"{where}: method {entry['spec']!r} names no optimizer; start it with one, e.g. 'sgd + {entry['spec']}'"
        )
    lrs = _check_lrs(entry["lrs"], f"{where}: method {entry['spec']!r}") if "lrs" in entry else grid
    if lrs is None:
        lr = spec.optimizer.full_kwargs().get("lr")
        if lr is None:
            raise LRControlError(f"{where}: method {entry['spec']!r} has no lr; give lrs = [...]")
        lrs = (float(lr),)
    try:
        for lr in lrs:
            with_lr(spec, lr)
    except LRControlError as exc:
        raise LRControlError(f"{where}: method {entry['spec']!r}: {exc}") from None
    return str(spec), lrs


def _tune_entry(entry: dict[str, Any], where: str) -> Any:
    from lrcontrol.tune.tuner import check_settings

    label = f"{where}: tuned method {entry.get('tune')!r}"
    _check_keys(entry, TUNE_KEYS, label)
    if not isinstance(entry["tune"], str):
        raise LRControlError(
            f"{label}: tune must be a search space string, e.g. tune = 'adamw(lr=loguniform(1e-4, 1))'"
        )
    options = {k: v for k, v in entry.items() if k != "tune"}
    try:
        return check_settings(entry["tune"], **options)
    except LRControlError as exc:
        raise LRControlError(f"{label}: {exc}") from None


def _check_methods_at_budgets(groups: list[Group]) -> None:
    """Build each method's controller at each budget on a dummy parameter: horizon errors surface now."""

    import torch

    import lrcontrol
    from lrcontrol.control.batch import resolve_batch_size
    from lrcontrol.spec import Spec, parse, with_lr
    from lrcontrol.tasks import get_task
    from lrcontrol.tune.strategies import MULTI_FIDELITY

    for group in groups:
        for settings in group.tuned:
            for name, _, budget in group.tasks:
                low = settings.min_budget or max(1, budget // 27)
                if settings.strategy in MULTI_FIDELITY and low * settings.eta > budget:
                    raise LRControlError(
                        f"{group.source}: tuned method {settings.name!r} on {name}: min_budget {low} × eta "
                        f"{settings.eta} exceeds the budget {budget}; lower min_budget"
                    )
    seen: set[tuple[str, int]] = set()
    for group in groups:
        for spec, lrs in group.methods:
            for name, size, budget in group.tasks:
                if (spec, budget) in seen or parse(spec).whole is not None:  # auto(): its member is built per run
                    continue
                seen.add((spec, budget))
                # batch_scale() takes the task's batch size; a "groups" term (discriminative) needs the
                # model's parameter names, so each run checks it when it builds the model.
                checked = resolve_batch_size(with_lr(spec, lrs[0]), get_task(name, size).batch_size)
                checked = Spec(tuple(t for t in checked.terms if t.kind != "groups"))
                try:
                    lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], checked, total_steps=budget)
                except LRControlError as exc:
                    raise LRControlError(f"{group.source}: method {spec!r} cannot run {budget} steps: {exc}") from None


def _check_tasks_load(groups: list[Group]) -> None:
    """Ask each task for its meta-features, which loads its data: missing data is an error now, not mid-sweep."""
    from lrcontrol.tasks import get_task

    for name, size in sorted({(n, s) for g in groups for n, s, _ in g.tasks}):
        try:
            get_task(name, size).meta_features()
        except LRControlError as exc:
            raise LRControlError(f"task {name!r} ({size}) cannot load its data: {exc}") from None


def expand(sweep: Sweep) -> list[RunSpec]:
    """Every run of the sweep, in a stable order (task, method, lr, seed); duplicates dropped."""
    from lrcontrol.bench.store import run_key
    from lrcontrol.control.batch import resolve_batch_size
    from lrcontrol.spec import with_lr
    from lrcontrol.tasks import get_task

    runs: dict[str, RunSpec] = {}
    for group in sweep.groups:
        for name, size, budget in group.tasks:
            task = get_task(name, size)
            for spec, lrs in group.methods:
                for lr in lrs:
                    # the task's batch size written into batch_scale(): the key matches the stored run's
                    full = spec if math.isnan(lr) else str(resolve_batch_size(with_lr(spec, lr), task.batch_size))
                    for seed in group.seeds:
                        key = run_key(task.key, full, seed, budget)
                        runs.setdefault(key, RunSpec(name, size, full, seed, budget, key, sweep.name))
    return list(runs.values())
