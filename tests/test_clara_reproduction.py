"""benchmarks/clara_reproduction.py: the protocol's cells, resume, the refusal to mix budgets, the report."""

from __future__ import annotations

import json

import benchmark_scripts
import pytest


@pytest.fixture(scope="module")
def repro():
    return benchmark_scripts.load("clara_reproduction")


def test_cells_cover_the_protocol(repro):
    budget = repro.Budget(seeds=2, fashion_seeds=1)
    cells = repro.cells(budget)
    iris = [c for c in cells if c["task"] == "iris"]
    # per seed: 2 optimizers × 7 η0 × (alone + 2 variants × 6 dampings) + D-Adaptation from d0 = η0 + 2 defaults
    assert len(iris) == 2 * (2 * 7 * 13 + 7 + 2)
    assert len([c for c in cells if c["task"] == "fashion_mlp"]) == 2 * 7 * 13 + 7 + 2
    keys = [(c["task"], c["seed"], c["lr"], c["method"]) for c in cells]
    assert len(keys) == len(set(keys))
    d0 = [c for c in iris if c["method"] == repro.DADAPT_D0 and c["seed"] == 0]
    assert [c["spec"] for c in d0] == [f"dadapt_adam(d0={lr:g})" for lr in repro.LRS]
    assert "sgd(lr=1e-06) + clara_published(variant='unit', d='auto')" in {c["spec"] for c in iris}


def test_d0_spec_builds_dadaptation_from_that_distance(repro):
    import torch

    import lrcontrol

    model = torch.nn.Linear(3, 2)
    opt, _ = lrcontrol.build(model.parameters(), "dadapt_adam(d0=0.001)", total_steps=10)
    assert opt.param_groups[0]["d"] == pytest.approx(1e-3)


def _fake_train(calls):
    def train(cell, budget):
        calls.append((cell["task"], cell["seed"], cell["lr"], cell["method"]))
        return {**cell, "acc": 50.0 + cell["seed"], "final_lr": cell["lr"], "nonfinite": False, "seconds": 0.0}

    return train


def test_resume_trains_only_missing_runs_and_refuses_another_budget(repro, tmp_path, monkeypatch, capsys):
    calls: list[tuple] = []
    monkeypatch.setattr(repro, "train", _fake_train(calls))
    out = tmp_path / "runs.jsonl"
    args = ["--out", str(out), "--tasks", "iris", "--epochs", "3", "--seeds", "1"]
    assert repro.main(args) == 0
    assert len(calls) == 191 and {c[1] for c in calls} == {0}
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["budget"]["epochs"] == 3 and len(lines) == 192
    # drop the last 10 runs as if the process had been killed, then resume: only those run again
    out.write_text("\n".join(lines[:-10]) + "\n")
    calls.clear()
    assert repro.main(args) == 0
    assert calls == [tuple(json.loads(line)[k] for k in ("task", "seed", "lr", "method")) for line in lines[-10:]]
    # more seeds: only the new seed's runs
    calls.clear()
    assert repro.main([*args[:-1], "2"]) == 0
    assert len(calls) == 191 and {c[1] for c in calls} == {1}
    # another budget into the same file: refused before anything is trained or written
    before = out.read_text()
    calls.clear()
    with pytest.raises(SystemExit) as exc:
        repro.main(["--out", str(out), "--tasks", "iris", "--epochs", "4"])
    assert exc.value.code == 2 and calls == [] and out.read_text() == before
    assert "another budget" in capsys.readouterr().err


def test_report_best_d_and_summary_over_complete_tasks_only(repro):
    records = []
    for task in ("iris", "wine"):
        for seed in (0, 1):
            for cell in repro.cells(repro.Budget(seeds=1)):
                if cell["task"] != task:
                    continue
                acc = 10.0
                if cell["method"] == "sgd+clara-plain@0.01":
                    acc = 90.0 + seed  # the best d everywhere: 90.5 ± 0.7
                records.append({**cell, "seed": seed, "acc": acc})
    # wine incomplete: one cell missing
    records = [r for r in records if not (r["task"] == "wine" and r["method"] == "adam" and r["lr"] == 1.0)]
    text = repro.report(records)
    assert "| 1e-06 | 10.0 ± 0.0 | 90.5 ± 0.7 (0.01) | 10.0 ± 0.0 |" in text
    assert "per η0 (iris; left out, incomplete: wine)" in text
    assert "D-Adapt. Adam, d0 = η0" in text
    summary = text[text.index("**Robustness to η0**") :]
    assert "| worst η0 | **10.0** | **90.5** |" in summary
    assert "†" not in text
    # a cell with fewer seeds than its task is marked; a subset (one η0) is summarised on its own
    cut = [r for r in records if not (r["task"] == "iris" and r["method"] == "sgd" and r["seed"] == 1)]
    assert "| 1e-06 | 10.0† |" in repro.report(cut)
    subset = repro.report([r for r in records if r["lr"] == 1e-6 and r["method"].startswith("sgd+clara")])
    assert "per η0 (iris, wine)" in subset and "| worst η0 | **90.5** | **10.0** | **10.0** | **10.0** |" in subset


def test_subset_options_and_the_displacement_ablation_budget(repro, tmp_path, monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(repro, "train", _fake_train(calls))
    out = tmp_path / "ablation.jsonl"
    args = ["--out", str(out), "--tasks", "wine", "--seeds", "1", "--direction", "displacement"]
    assert repro.main([*args, "--methods", "adam+clara,sgd+clara-unit", "--lrs", "1e-6,1e-5"]) == 0
    assert len(calls) == 2 * (12 + 6) and {c[2] for c in calls} == {1e-6, 1e-5}
    assert all(c[3].startswith(("adam+clara", "sgd+clara-unit")) for c in calls)
    assert json.loads(out.read_text().splitlines()[0])["budget"]["direction"] == "displacement"
    with pytest.raises(SystemExit):  # the optimizer-direction budget is another budget
        repro.main(["--out", str(out), "--tasks", "wine", "--seeds", "1"])
    with pytest.raises(SystemExit):
        repro.main([*args, "--lrs", "3e-3"])  # not on the grid


def test_displacement_ablation_changes_only_where_clara_reads_its_direction(repro):
    cell = {"task": "iris", "seed": 0, "lr": 1e-6, "method": "sgd+clara-plain@0.1"}
    cell["spec"] = "sgd(lr=1e-06) + clara_published(variant='plain', d=0.1)"
    budget = repro.Budget(epochs=30)
    ours, again = repro.train(cell, budget), repro.train(cell, budget)
    ablation = repro.train(cell, repro.Budget(epochs=30, direction="displacement"))
    assert ours["final_lr"] == again["final_lr"]  # deterministic
    # at η = 1e-6 the float32 displacement is mostly rounding, so the path and the LR differ
    assert ablation["final_lr"] != ours["final_lr"]
    plain = {"task": "iris", "seed": 0, "lr": 1e-6, "method": "sgd", "spec": "sgd(lr=1e-06)"}
    assert (
        repro.train(plain, budget)["acc"]
        == repro.train(plain, repro.Budget(epochs=30, direction="displacement"))["acc"]
    )
