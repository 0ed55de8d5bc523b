"""Per-instance algorithm selectors: which portfolio member to run on a task, from its features.

Every selector learns from a features table (instance × feature, NaN = unavailable) and the regret table
of the portfolio members (instance × member, `lrcontrol.select.regret`), and chooses a member for a new
feature row:

    selector = KNearest(k=5).fit(features, regrets)
    selector.choose({"log_params": 3.1, "epochs": 100.0, ...})       # → "adamw-cosine"
    data = selector.to_dict()                                         # plain JSON types only
    same = selector_from_dict(json.loads(json.dumps(data)))           # chooses exactly alike

- `SingleBest`: the member of least mean training regret, whatever the features (the SBS).
- `KNearest`: the k training instances nearest in standardised feature space; the member of least mean
  regret over them (Kadioglu et al., "ISAC", ECAI 2010; Malitsky et al., "Algorithm portfolios based on
  cost-sensitive hierarchical clustering", IJCAI 2013).
- `PairwiseClassifier`: one random-forest classifier per pair of members, predicting which of the two does
  better, each training instance weighted by the regret difference (cost-sensitive); the member winning
  most pairwise votes is chosen (Xu et al., "SATzilla2012", SAT Competition 2012).
- `RegretRegression`: one random-forest regression of the regret per member; the least predicted regret
  wins (Xu et al., "SATzilla", JAIR 2008, with regret as the performance measure).

Features are imputed with the training medians (stored) before anything else, so a feature missing in a
plain loop never stops a choice. Models are fitted with scikit-learn and stored as arrays: `choose`
needs numpy only (`lrcontrol.select.forest` explains why the trees are exported by hand).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from lrcontrol.errors import LRControlError
from lrcontrol.select.forest import Forest, export_forest

#: columns of the features table that are not features
NON_FEATURES = ("instance", "family", "dataset", "probe_cost")
FORMAT = 1


class Selector(Protocol):
    name: str

    def fit(self, features: Any, regrets: Any) -> Selector: ...
    def choose(self, row: Mapping[str, float]) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


def feature_columns(features: Any) -> list[str]:
    """The feature columns of a features table: every numeric column but the bookkeeping ones."""
    return [c for c in features.columns if c not in NON_FEATURES and features[c].dtype.kind in "fiub"]


def _indexed(features: Any) -> Any:
    return features.set_index("instance") if "instance" in features.columns else features


class _Inputs:
    """Feature columns with their training medians (imputation) and mean/scale (standardisation)."""

    def __init__(self, columns: list[str], medians: np.ndarray, means: np.ndarray, scales: np.ndarray) -> None:
        self.columns, self.medians, self.means, self.scales = columns, medians, means, scales

    @classmethod
    def fit(cls, x: np.ndarray, columns: list[str]) -> _Inputs:
        with np.errstate(all="ignore"):
            medians = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0) if len(x) else np.zeros(len(columns))
        medians = np.where(np.isfinite(medians), medians, 0.0)  # a feature never seen: a constant 0
        imputed = np.where(np.isfinite(x), x, medians)
        means, scales = imputed.mean(axis=0), imputed.std(axis=0)
        return cls(columns, medians, means, np.where(scales > 1e-12, scales, 1.0))

    def matrix(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float).reshape(-1, len(self.columns))
        return np.where(np.isfinite(x), x, self.medians)

    def row(self, row: Mapping[str, float]) -> np.ndarray:
        values = [row.get(c) for c in self.columns]
        return self.matrix(np.array([math.nan if v is None else float(v) for v in values]))

    def standardised(self, x: np.ndarray) -> np.ndarray:
        return (x - self.means) / self.scales

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Inputs:
        return cls(list(d["columns"]), *(np.asarray(d[k], dtype=float) for k in ("medians", "means", "scales")))


class _Base:
    """Shared plumbing: aligning the training tables, imputing, batch and single choices, the dict form."""

    name: ClassVar[str]
    members: list[str]
    inputs: _Inputs

    def fit(self, features: Any, regrets: Any) -> _Base:
        """Learn from `features` (instance × feature, or with an `instance` column) and `regrets`
        (instance × member: the members to choose among, in tie-breaking order)."""
        features = _indexed(features)
        missing = [i for i in regrets.index if i not in features.index]
        if missing:
            raise LRControlError(f"no features for instance {missing[0]}; compute the features table for it")
        if regrets.empty or regrets.shape[1] == 0:
            raise LRControlError("cannot fit a selector on an empty meta-dataset")
        columns = feature_columns(features)
        x = features.loc[list(regrets.index), columns].to_numpy(dtype=float)
        y = regrets.to_numpy(dtype=float)
        if not np.isfinite(y).all():
            raise LRControlError("the regret table has missing values; every member needs a run on every instance")
        self.members = [str(m) for m in regrets.columns]
        self.inputs = _Inputs.fit(x, columns)
        self._fit(self.inputs.matrix(x), y, [str(i) for i in regrets.index])
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray, instances: list[str]) -> None:
        raise NotImplementedError

    def scores(self, x: np.ndarray) -> np.ndarray:
        """rows × members, lower = better (imputed feature rows)."""
        raise NotImplementedError

    def choose_many(self, features: Any) -> list[str]:
        """The choice for every row of a features table (rows in its order)."""
        x = self.inputs.matrix(_indexed(features).reindex(columns=self.inputs.columns).to_numpy(dtype=float))
        # argmin takes the first of equal scores: ties go to the earlier member
        return [self.members[i] for i in np.argmin(self.scores(x), axis=1)]

    def choose(self, row: Mapping[str, float]) -> str:
        """The member to run on the task with these features (missing features: the training median)."""
        return self.members[int(np.argmin(self.scores(self.inputs.row(row))[0]))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "format": FORMAT,
            "members": list(self.members),
            "inputs": self.inputs.to_dict(),
            **self._params(),
            **self._state(),
        }

    def _params(self) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Base:
        if d.get("kind") != cls.name or d.get("format") != FORMAT:
            raise LRControlError(f"not a {cls.name} selector of format {FORMAT}: kind={d.get('kind')!r}")
        selector = cls(**{k: d[k] for k in cls._param_names() if k in d})
        selector.members = list(d["members"])
        selector.inputs = _Inputs.from_dict(d["inputs"])
        selector._load(d)
        return selector

    @classmethod
    def _param_names(cls) -> Sequence[str]:
        return ()

    def _load(self, d: Mapping[str, Any]) -> None:
        pass


class SingleBest(_Base):
    """The member of least mean regret on the training instances, for every task (the SBS)."""

    name = "single-best"

    def _fit(self, x: np.ndarray, y: np.ndarray, instances: list[str]) -> None:
        self.mean_regret = y.mean(axis=0)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.tile(self.mean_regret, (len(x), 1))

    def predict_regrets(self, row: Mapping[str, float]) -> dict[str, float]:
        return dict(zip(self.members, self.mean_regret.tolist()))

    def _state(self) -> dict[str, Any]:
        return {"mean_regret": self.mean_regret.tolist()}

    def _load(self, d: Mapping[str, Any]) -> None:
        self.mean_regret = np.asarray(d["mean_regret"], dtype=float)


class KNearest(_Base):
    """The member of least mean regret over the k nearest training instances (standardised features)."""

    name = "knn"

    def __init__(self, k: int = 5) -> None:
        if not isinstance(k, int) or k < 1:
            raise LRControlError(f"k must be a whole number ≥ 1, got {k!r}")
        self.k = k

    def _fit(self, x: np.ndarray, y: np.ndarray, instances: list[str]) -> None:
        self.points = self.inputs.standardised(x)
        self.regrets = y
        self.instances = instances

    def neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) of the k nearest training instances per row, nearest first (stable on ties)."""
        z = self.inputs.standardised(x)
        distances = np.sqrt(((z[:, None, :] - self.points[None, :, :]) ** 2).sum(axis=2))
        order = np.argsort(distances, axis=1, kind="stable")[:, : self.k]
        return order, np.take_along_axis(distances, order, axis=1)

    def scores(self, x: np.ndarray) -> np.ndarray:
        order, _ = self.neighbours(x)
        return self.regrets[order].mean(axis=1)

    def predict_regrets(self, row: Mapping[str, float]) -> dict[str, float]:
        return dict(zip(self.members, self.scores(self.inputs.row(row))[0].tolist()))

    def nearest(self, row: Mapping[str, float]) -> list[tuple[str, float]]:
        """The k nearest known instances with their standardised distances (for explaining a choice)."""
        order, distances = self.neighbours(self.inputs.row(row))
        return [(self.instances[i], float(d)) for i, d in zip(order[0], distances[0])]

    def _params(self) -> dict[str, Any]:
        return {"k": self.k}

    @classmethod
    def _param_names(cls) -> Sequence[str]:
        return ("k",)

    def _state(self) -> dict[str, Any]:
        return {"instances": list(self.instances), "points": self.points.tolist(), "regrets": self.regrets.tolist()}

    def _load(self, d: Mapping[str, Any]) -> None:
        self.instances = list(d["instances"])
        self.points = np.asarray(d["points"], dtype=float).reshape(len(self.instances), len(self.inputs.columns))
        self.regrets = np.asarray(d["regrets"], dtype=float).reshape(len(self.instances), len(self.members))


class _ForestSelector(_Base):
    """Random forests from scikit-learn, kept as exported arrays."""

    def __init__(self, trees: int = 32, max_depth: int = 6, min_leaf: int = 2, seed: int = 0) -> None:
        self.trees, self.max_depth, self.min_leaf, self.seed = trees, max_depth, min_leaf, seed

    def _forest_args(self) -> dict[str, Any]:
        return {
            "n_estimators": self.trees,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_leaf,
            "random_state": self.seed,
            "n_jobs": 1,
        }

    def _params(self) -> dict[str, Any]:
        return {"trees": self.trees, "max_depth": self.max_depth, "min_leaf": self.min_leaf, "seed": self.seed}

    @classmethod
    def _param_names(cls) -> Sequence[str]:
        return ("trees", "max_depth", "min_leaf", "seed")


class RegretRegression(_ForestSelector):
    """One random-forest regression of the regret per member; the least predicted regret is chosen."""

    name = "regression"

    def _fit(self, x: np.ndarray, y: np.ndarray, instances: list[str]) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.models, importances = [], []
        for column in range(y.shape[1]):
            forest = RandomForestRegressor(**self._forest_args()).fit(x, y[:, column])
            self.models.append(Forest(export_forest(forest)))
            importances.append(forest.feature_importances_)
        self.importances = np.mean(importances, axis=0)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([model.predict(x) for model in self.models])

    def predict_regrets(self, row: Mapping[str, float]) -> dict[str, float]:
        return dict(zip(self.members, self.scores(self.inputs.row(row))[0].tolist()))

    def _state(self) -> dict[str, Any]:
        return {"importances": self.importances.tolist(), "models": [m.data for m in self.models]}

    def _load(self, d: Mapping[str, Any]) -> None:
        self.importances = np.asarray(d["importances"], dtype=float)
        self.models = [Forest(m) for m in d["models"]]


class PairwiseClassifier(_ForestSelector):
    """Per pair of members (i, j), a classifier of "i has less regret than j", each training instance
    weighted by |regret_i − regret_j| (a wrong call costs what it loses); most votes wins, ties broken by
    the summed probabilities, then by member order."""

    name = "pairwise"

    def _fit(self, x: np.ndarray, y: np.ndarray, instances: list[str]) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.pairs, self.models, importances = [], [], []
        for i in range(y.shape[1]):
            for j in range(i + 1, y.shape[1]):
                weight = np.abs(y[:, i] - y[:, j])
                keep = weight > 1e-12  # equal regrets teach nothing about the order
                labels = y[keep, i] < y[keep, j]
                self.pairs.append([i, j])
                if len(set(labels.tolist())) < 2:
                    # one-sided (or no) evidence: a constant probability that i wins
                    p = 0.5 if not keep.any() else float(labels[0])
                    self.models.append({"constant": p})
                    continue
                forest = RandomForestClassifier(**self._forest_args()).fit(x[keep], labels, sample_weight=weight[keep])
                self.models.append(export_forest(forest, positive=True))
                importances.append(forest.feature_importances_)
        self.importances = np.mean(importances, axis=0) if importances else np.zeros(x.shape[1])
        self._forests = [None if "constant" in m else Forest(m) for m in self.models]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """rows × pairs: the probability that the pair's first member does better."""
        return np.column_stack(
            [
                np.full(len(x), model["constant"]) if forest is None else forest.predict(x)
                for model, forest in zip(self.models, self._forests)
            ]
        )

    def scores(self, x: np.ndarray) -> np.ndarray:
        p = self.probabilities(x)
        votes = np.zeros((len(x), len(self.members)))
        mass = np.zeros_like(votes)
        for column, (i, j) in enumerate(self.pairs):
            win = np.where(p[:, column] > 0.5, 1.0, np.where(p[:, column] < 0.5, 0.0, 0.5))
            votes[:, i] += win
            votes[:, j] += 1.0 - win
            mass[:, i] += p[:, column]
            mass[:, j] += 1.0 - p[:, column]
        # lower is better: votes first; the summed probabilities only break ties (they are < 1 per pair)
        return -(votes + mass / (len(self.members) ** 2 + 1))

    def _state(self) -> dict[str, Any]:
        return {"importances": self.importances.tolist(), "pairs": self.pairs, "models": self.models}

    def _load(self, d: Mapping[str, Any]) -> None:
        self.importances = np.asarray(d["importances"], dtype=float)
        self.pairs = [list(p) for p in d["pairs"]]
        self.models = list(d["models"])
        self._forests = [None if "constant" in m else Forest(m) for m in self.models]


SELECTORS: dict[str, type[_Base]] = {c.name: c for c in (SingleBest, KNearest, PairwiseClassifier, RegretRegression)}


def selector_from_dict(d: Mapping[str, Any]) -> _Base:
    """A selector from its `to_dict()` (any kind)."""
    kind = d.get("kind") if isinstance(d, Mapping) else None
    if kind not in SELECTORS:
        raise LRControlError(f"unknown selector kind {kind!r}; known: {', '.join(SELECTORS)}")
    return SELECTORS[kind].from_dict(d)
