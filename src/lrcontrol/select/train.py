"""Training a selector file (what `lrcontrol select train` writes, and `auto()` reads) from the meta-dataset.

Kept apart from `lrcontrol.select.auto`: training reads the meta-dataset (pandas, the store's schema)
and fits scikit-learn models; choosing needs neither, so the engine and `lrcontrol.auto` never import this.
"""

from __future__ import annotations

from typing import Any

from lrcontrol.errors import LRControlError


def train_selector(runs: Any, features: Any, kind: str) -> dict[str, Any]:
    """The content of a selector file trained on the meta-dataset at `runs` (runs.parquet) with the
    features at `features` (features.parquet): a `kind` selector (`lrcontrol.select.selectors.SELECTORS`)
    fitted on the portfolio members' regret, configured as `lrcontrol.select.evaluation` evaluates it.
    Deterministic: the same files give the same selector file
    (its provenance names the inputs by content hash, never by path or time)."""
    import hashlib
    from pathlib import Path

    import lrcontrol
    from lrcontrol.select.evaluation import Candidate, default_selectors
    from lrcontrol.select.metadata import read_features, read_runs
    from lrcontrol.select.regret import regret_table
    from lrcontrol.select.selectors import SELECTORS, feature_columns
    from lrcontrol.select.shipped import FORMAT, VERSION

    if kind not in SELECTORS:
        raise LRControlError(f"unknown selector kind {kind!r}; choose one of {', '.join(SELECTORS)}")
    run_table, feature_table = read_runs(runs), read_features(features)
    table = regret_table(run_table)
    regrets = table.member_regret()
    known = set(feature_table["instance"])
    missing = [i for i in regrets.index if i not in known]
    if missing:
        raise LRControlError(
            f"{features} has no features for {len(missing)} instance(s) of {runs} (e.g. {missing[0]}); "
            "compute the features of the same meta-dataset"
        )
    members: dict[str, str] = {}
    for member in table.members:
        specs = sorted(set(run_table.loc[run_table["member"] == member, "spec"]))
        if len(specs) != 1:
            raise LRControlError(
                f"{runs}: member {member!r} has {len(specs)} different specs; rebuild the meta-dataset"
            )
        members[member] = specs[0]
    # the configuration the held-out evaluation measured (`lrcontrol select evaluate`), not the class defaults:
    # its factory, the feature columns it reads and the members it chooses among (an entry is a Candidate
    # or a bare factory)
    candidates = [e if isinstance(e, Candidate) else Candidate(e) for e in default_selectors().values()]
    evaluated = {c.make().name: c for c in reversed(candidates)}  # the first entry of a kind wins
    candidate = evaluated.get(kind, Candidate(SELECTORS[kind]))
    columns = [c for c in (candidate.columns or feature_table.columns) if c in feature_table.columns]
    if candidate.columns is not None and not feature_columns(feature_table[columns]):
        raise LRControlError(
            f"{features} has none of the features a {kind} selector reads (e.g. {candidate.columns[0]}); "
            "compute the features with `lrcontrol select features`"
        )
    usable = feature_table[list(dict.fromkeys(["instance", *columns]))]
    selector = candidate.make().fit(usable, regrets[candidate.targets(table)])
    rows = run_table[run_table["instance"].isin(regrets.index)]
    return {
        "format": FORMAT,
        "version": VERSION,
        "lrcontrol_version": lrcontrol.__version__,
        "kind": kind,
        "features": list(selector.inputs.columns),
        "members": members,
        "selector": selector.to_dict(),
        "provenance": {
            "runs_sha256": hashlib.sha256(Path(runs).read_bytes()).hexdigest(),
            "features_sha256": hashlib.sha256(Path(features).read_bytes()).hexdigest(),
            "instances": int(len(regrets)),
            "families": sorted({str(f) for f in rows["family"]}),
            "datasets": sorted({str(d) for d in rows["dataset"]}),
            "runs": int(len(run_table)),
        },
    }
