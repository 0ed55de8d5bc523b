"""Random forests as plain arrays: export a fitted scikit-learn forest and predict with numpy alone.

Written by hand because no library serialises scikit-learn models without pickle in a version-stable
way (pickles and joblib files are tied to the scikit-learn version that wrote them, and loading one runs
code; ONNX export needs skl2onnx + onnxruntime). A fitted tree is four arrays — children, split feature,
threshold — plus the leaf values, and its prediction is a walk from the root; that is all a shipped
selector needs, in JSON, with numpy (a core dependency) and without scikit-learn.

The walk matches scikit-learn exactly: it compares the features as float32 (scikit-learn's tree dtype)
against the float64 thresholds, going left on `x <= threshold`; leaf values are scikit-learn's, the
classifier's normalised to class probabilities, averaged over the trees like `predict_proba`/`predict`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def export_forest(forest: Any, positive: Any = None) -> dict[str, Any]:
    """A fitted `RandomForestRegressor` (single output), or a `RandomForestClassifier` with the probability
    of class `positive` as the leaf value, as a dict of plain lists."""
    trees = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        value = np.asarray(tree.value, dtype=float)[:, 0, :]
        if positive is None:
            leaf = value[:, 0]
        else:
            totals = value.sum(axis=1)
            column = list(forest.classes_).index(positive)
            leaf = np.divide(value[:, column], totals, out=np.zeros_like(totals), where=totals > 0)
        trees.append(
            {
                "left": tree.children_left.tolist(),
                "right": tree.children_right.tolist(),
                "feature": tree.feature.tolist(),
                "threshold": tree.threshold.tolist(),
                "value": leaf.tolist(),
            }
        )
    return {"trees": trees}


class Forest:
    """A forest exported by `export_forest`, predicting the mean leaf value over its trees."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._trees = [tuple(np.asarray(t[k], dtype=dtype) for k, dtype in _FIELDS) for t in data["trees"]]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Mean leaf value per row of `x` (rows × features, no NaN)."""
        x32 = np.asarray(x, dtype=np.float32)
        total = np.zeros(len(x32))
        for left, right, feature, threshold, value in self._trees:
            node = np.zeros(len(x32), dtype=np.int64)
            rows = np.arange(len(x32))
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                at, r = node[inner], rows[inner]
                go_left = x32[r, feature[at]] <= threshold[at]
                node[inner] = np.where(go_left, left[at], right[at])
            total += value[node]
        return total / max(1, len(self._trees))


_FIELDS = (
    ("left", np.int64),
    ("right", np.int64),
    ("feature", np.int64),
    ("threshold", np.float64),
    ("value", np.float64),
)
