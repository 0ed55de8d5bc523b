"""The held-out evaluation of learned(): its runs are resumable, its regrets sit on the meta-dataset's scale,
the comparisons come from the meta-dataset's rows, and the targets script reads its output."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_learn import InProcess

from lrcontrol.bench.store import Store
from lrcontrol.select import learn, learned_eval
from lrcontrol.select.regret import normalised

TASKS = ["sphere-10", "iris-logreg"]
LRS = [1e-4, 1e-3, 1e-1]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def meta():
    """A two-instance meta-dataset: two members and the grid baseline (the best of its two LRs)."""
    specs = {
        "adamw": "adamw(lr=0.001)",
        "adamw-cosine": "adamw(lr=0.001) + warmup() + cosine()",
        "grid-1e-2": "adamw(lr=0.01) + warmup() + cosine()",
    }
    rows, _ = learn.reference_rows(TASKS, list(specs.values()), InProcess(), size="smoke")
    by_spec = {v: k for k, v in specs.items()}
    out = []
    for instance in TASKS:
        mine = [r for r in rows if r["instance"] == instance]
        for r in mine:
            member = (
                by_spec[r["spec"].replace("warmup(steps=0.05)", "warmup()")] if "lr=0.01" not in r["spec"] else None
            )
            if member is not None:
                out.append({**r, "member": member, "cost": 1.0})
        grid = [r for r in mine if "cosine" in r["spec"]]
        best = min(grid, key=learn.oriented)
        out.append({**best, "member": "grid:adamw-cosine", "cost": 2.0})
    frame = pd.DataFrame(out)
    frame["family"] = frame["instance"].map({"sphere-10": "synthetic", "iris-logreg": "tabular"})
    return frame


def test_the_evaluation_scores_the_policy_on_the_meta_datasets_scale_and_resumes(meta, tmp_path):
    store = tmp_path / "eval.db"
    runs = learned_eval.evaluation_runs(TASKS, "default", LRS, size="smoke")
    assert len(runs) == 6
    outcome = learned_eval.run_missing(runs[:2], store, 1, lambda: None, InProcess())
    assert outcome.recorded == 2
    outcome = learned_eval.run_missing(runs, store, 1, lambda: None, InProcess())  # a stopped evaluation resumed
    assert outcome.recorded == 4 and outcome.skipped == 2
    evaluation = learned_eval.collect(meta, store, TASKS, "default", LRS, size="smoke")
    assert list(evaluation.regrets.columns[:3]) == ["learned@0.001", "learned@0.0001", "learned@0.1"]
    assert {"grid:adamw-cosine", "adamw-cosine", "adamw"} <= set(evaluation.regrets.columns)
    with Store(store, create=False, readonly=True) as db:
        record = next(r for r in db.records() if r.task_name == "iris-logreg" and "lr=0.001" in r.spec)
    loss = math.inf if record.diverged else -record.final_metric
    anchor = -meta[meta.instance == "iris-logreg"]["initial_metric"].median()
    rows = meta[meta.instance == "iris-logreg"]
    best = min(learn.oriented(r) for r in rows.to_dict("records"))
    expected = float(normalised(np.array([loss]), best, anchor)[0])
    assert evaluation.regrets.loc["iris-logreg", "learned@0.001"] == pytest.approx(expected)
    robust = evaluation.robustness()
    reached = (evaluation.regrets[[f"learned@{lr:g}" for lr in LRS]] <= learned_eval.REACH).sum(axis=1)
    assert robust["per_instance"] == reached.to_dict() and robust["mean_count"] == reached.mean()
    assert evaluation.notes and "not compared" in evaluation.notes[0]
    figure = tmp_path / "lr.png"
    learned_eval.figure(evaluation, figure)
    assert figure.stat().st_size > 10_000
    result = learned_eval.to_dict(evaluation, "default", ["synthetic", "tabular"])
    text = learned_eval.markdown(result)
    assert "| learned@0.001 |" in text and "| grid:adamw-cosine |" in text and "learned@0.1 |" not in text
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(result, default=float))
    printed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "learned_targets.py"), str(path), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    targets = json.loads(printed)
    assert [t["target"][:10] for t in targets] == ["within 0.0", "better tha", "≥ 6 of 7 i"]
    gap = result["summary"]
    assert targets[0]["met"] == (targets[0]["value"] <= 0.02) and len(gap) == len(evaluation.regrets.columns)
