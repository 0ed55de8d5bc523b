"""The features of many instances as one table (`metadata/features.parquet`), computed resumably.

One row per instance: `instance`, `family`, `dataset`, then one float column per name of FEATURES
(NaN = unavailable) and `probe_cost` (full-run equivalents). Each instance's row is cached as a small
JSON file as soon as it is computed, so a stopped computation continues where it stopped; the table is
written (atomically) once every row is there. Rows are computed by single-threaded worker processes:
features are deterministic for a seed, so the table does not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrcontrol.errors import LRControlError
from lrcontrol.select.features import FEATURE_NAMES

#: Bump when a feature's definition changes: cached rows of another version are recomputed.
FEATURES_VERSION = 1
ID_COLUMNS = ("instance", "family", "dataset")
COLUMNS = (*ID_COLUMNS, *FEATURE_NAMES, "probe_cost")


@dataclass(frozen=True)
class Row:
    """An instance to compute: its canonical task name, family and data set."""

    instance: str
    family: str
    dataset: str


def rows_from_names(names: Sequence[str], known: Mapping[str, tuple[str, str]] | None = None) -> list[Row]:
    """Rows for task names (with parameters): each name is checked, its meta-features read (a task
    without them fails here, before anything is computed) and made canonical. Family and data set come
    from `known` (instance → (family, dataset), e.g. a meta-dataset's) or the instance space's rule."""
    from lrcontrol.select.features import static_features
    from lrcontrol.select.instances import dataset_of
    from lrcontrol.tasks import get_task

    rows: list[Row] = []
    seen: set[str] = set()
    for name in names:
        task = get_task(name)
        static_features(task)
        if task.name not in seen:
            seen.add(task.name)
            family, dataset = (known or {}).get(task.name, (task.family, dataset_of(task.name)))
            rows.append(Row(task.name, family, dataset))
    if not rows:
        raise LRControlError("no instances to compute features for; give at least one task name")
    return rows


def rows_from_runs(path: Path) -> list[Row]:
    """The instances of a meta-dataset (`metadata/runs.parquet`), in their order of appearance."""
    import pandas as pd

    if not path.is_file():
        raise LRControlError(f"meta-dataset {path} does not exist; build it first (lrcontrol select build)")
    try:
        runs = pd.read_parquet(path, columns=list(ID_COLUMNS))
    except (OSError, ValueError, KeyError) as exc:
        raise LRControlError(f"{path} is not a meta-dataset with columns {', '.join(ID_COLUMNS)} ({exc})") from None
    unique = runs.drop_duplicates("instance")
    # The meta-dataset's family and data set are the ones its held-out splits use: keep them.
    recorded = {str(r.instance): (str(r.family), str(r.dataset)) for r in unique.itertuples()}
    return rows_from_names(list(recorded), recorded)


def rows_from_generator(n: int, seed: int) -> list[Row]:
    """The first `n` instances the instance space draws with `seed` (`lrcontrol.select.instances`)."""
    from lrcontrol.select.instances import generate

    drawn = generate(n, seed)
    return rows_from_names([i.task for i in drawn], {i.task: (i.family, i.dataset) for i in drawn})


def read_names(path: Path) -> list[str]:
    """Task names from a file: one per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise LRControlError(f"instance file {path} does not exist; give a file with one task name per line")
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def cache_file(cache: Path, row: Row, seed: int) -> Path:
    key = hashlib.sha256(f"{row.instance}|{seed}|{FEATURES_VERSION}".encode()).hexdigest()[:24]
    return cache / f"{key}.json"


def _compute(row: Row, seed: int) -> dict[str, Any]:
    """One row (in a worker process: one thread, so results do not depend on the machine's cores)."""
    import torch

    from lrcontrol.select.features import task_features
    from lrcontrol.tasks import get_task

    torch.set_num_threads(1)
    values = task_features(get_task(row.instance), seed)
    return {"instance": row.instance, "family": row.family, "dataset": row.dataset, **values}


def _store(path: Path, record: dict[str, Any]) -> None:
    plain = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": FEATURES_VERSION, "row": plain}))
    os.replace(tmp, path)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged cache entry is recomputed
    if not isinstance(saved, dict) or saved.get("version") != FEATURES_VERSION:
        return None
    row = saved.get("row", {})
    if set(row) != set(COLUMNS):
        return None
    return {k: (math.nan if v is None else v) for k, v in row.items()}


def compute_table(
    rows: Sequence[Row],
    out: Path,
    cache: Path,
    *,
    seed: int = 0,
    workers: int = 2,
    on_row: Callable[[Row, bool], None] | None = None,
) -> Any:
    """Compute (or read from `cache`) the features of every row, write the Parquet `out`, return the
    DataFrame. on_row(row, cached) is called as each row is done (for a progress bar)."""
    import pandas as pd

    if workers < 1:
        raise LRControlError(f"workers must be at least 1, got {workers}")
    cache.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    todo: list[Row] = []
    for row in rows:
        found = _load(cache_file(cache, row, seed))
        if found is not None:
            done[row.instance] = found
            if on_row is not None:
                on_row(row, True)
        else:
            todo.append(row)
    if todo and workers == 1:
        for row in todo:
            done[row.instance] = record = _compute(row, seed)
            _store(cache_file(cache, row, seed), record)
            if on_row is not None:
                on_row(row, False)
    elif todo:
        # spawn, not fork: the parent has torch (and its thread pools) loaded already.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_compute, row, seed): row for row in todo}
            for future in as_completed(futures):
                row = futures[future]
                done[row.instance] = record = future.result()
                _store(cache_file(cache, row, seed), record)
                if on_row is not None:
                    on_row(row, False)
    table = pd.DataFrame([done[row.instance] for row in rows], columns=list(COLUMNS))
    for name in (*FEATURE_NAMES, "probe_cost"):
        table[name] = table[name].astype("float64")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return table
