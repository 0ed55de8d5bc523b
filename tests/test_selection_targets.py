"""benchmarks/selection_targets.py on the tiny synthetic meta-dataset: the targets it prints and the
bootstrap interval of the gap closed that says how much of a measured gap is noise."""

from __future__ import annotations

import benchmark_scripts
import pytest
from synthetic_meta import meta_dataset

from lrcontrol.select.evaluation import RACE, SBS, VBS, evaluate_instances, summarize


def load_benchmark():
    return benchmark_scripts.load("selection_targets")


@pytest.fixture(scope="module")
def held_out():
    runs, features = meta_dataset()
    per_instance, _ = evaluate_instances(runs, features, "family")
    return per_instance, summarize(per_instance)


def test_the_gap_intervals_bracket_the_measured_gaps_and_are_reproducible(held_out):
    per_instance, summary = held_out
    bench = load_benchmark()
    rows = summary.set_index("entry")
    for entry in ("k-nearest (k=5)", "regret regression", RACE):
        low, high = bench.gap_interval(per_instance, entry)
        assert low <= rows.loc[entry, "gap_closed"] <= high
        assert (low, high) == bench.gap_interval(per_instance, entry)  # seeded
    assert bench.gap_interval(per_instance, VBS) == (1.0, 1.0) and bench.gap_interval(per_instance, SBS) == (0, 0)


def test_the_targets_name_each_threshold_with_its_interval(held_out):
    per_instance, summary = held_out
    bench = load_benchmark()
    result = {t["target"]: t for t in bench.targets(per_instance, summary, "k-nearest (k=5)")}
    gap = result["k-nearest (k=5): gap closed"]
    assert gap["threshold"] == 0.5 and gap["direction"] == "≥" and "90 % bootstrap interval" in gap["note"]
    assert gap["hit"] == (gap["measured"] >= 0.5)
    assert result["racing: compute (runs)"]["hit"] and "bootstrap" in result["racing: gap closed"]["note"]
