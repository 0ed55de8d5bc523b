"""The instance space of algorithm selection: task names with arguments that differ the way real jobs do.

An instance is a canonical task name (`lrcontrol.tasks.params`), e.g.

    letter-logreg(batch=64, epochs=100, head="sigmoid", inputs="libsvm")
    fmnist-mlp(fraction=0.05, steps=200, evals=8, width=64, depth=1)
    rastrigin-20-noisy0.5(batch=4, steps=300, evals=16)

`generate(n, seed)` draws a seeded sample over all five families. What varies, per family, is what makes
the best LR control differ between training jobs: model scale (width, depth, dimension), data size
(`fraction` of the training split), batch size, training length (`steps` or `epochs`), input scaling
(`inputs="raw"` / `"libsvm"`), label noise and gradient noise (noisy synthetic functions). Every draw is
kept cheap — about a second per run on one CPU thread on average — so that a meta-dataset of a few
hundred instances × a portfolio fits on a 2-core machine; the ranges below are sized for that
(images and language: small subsets, short runs, narrow models; tabular and synthetic: many).

The "Revisiting Learning Rate Control" LIBSVM setting — logistic regression, 100 epochs, batch 64, the
sigmoid head, LIBSVM scaling — is always in the sample, on the LIBSVM sets small enough for 100 epochs to
stay cheap (`REVISITING`).

`dataset_of(task)` names the underlying data set of an instance: every variant of one data set shares it,
so a leave-one-dataset-out split holds them out together (`check_disjoint` verifies a split).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lrcontrol.errors import LRControlError
from lrcontrol.tasks.names import FAMILIES

#: the small LIBSVM sets of the "Revisiting" study's setting (100 epochs of batch 64 stay ≤ 3 000 steps)
REVISITING_SETS = ("iris", "wine", "breast_cancer", "vehicle", "vowel", "segment", "splice")
REVISITING = tuple(
    f'{d}-logreg(batch=64, epochs=100, evals=20, head="sigmoid", inputs="libsvm")' for d in REVISITING_SETS
)
#: the share of each family in a sample (tabular and synthetic are cheap: most of the sample)
FAMILY_SHARES = {"synthetic": 0.25, "tabular": 0.4, "sequence": 0.15, "image": 0.12, "language": 0.08}

_TABULAR_SETS = (
    "breast_cancer",
    "iris",
    "wine",
    "digits",
    "letter",
    "pendigits",
    "vehicle",
    "vowel",
    "splice",
    "magic",
    "satimage",
    "optdigits",
    "texture",
    "segment",
    "spambase",
)
# training-split sizes (60 % of each set), to keep batches below the data and 100-epoch runs affordable
_TRAIN_SIZES = {
    "breast_cancer": 341,
    "iris": 90,
    "wine": 106,
    "digits": 1078,
    "letter": 12000,
    "pendigits": 6595,
    "vehicle": 507,
    "vowel": 594,
    "splice": 1914,
    "magic": 11412,
    "satimage": 3861,
    "optdigits": 3372,
    "texture": 3300,
    "segment": 1386,
    "spambase": 2758,
}
_ANY_D = ("sphere", "ellipsoid1e3", "ellipsoid1e6", "rosenbrock", "rastrigin", "ackley")
_TWO_D = ("himmelblau", "beale", "camel3", "eggholder")
#: the most steps a generated run may take, per family (keeps the mean run near a second)
MAX_STEPS = {"synthetic": 1000, "tabular": 2000, "sequence": 1000, "image": 400, "language": 300}


@dataclass(frozen=True)
class Instance:
    """One instance: its canonical task name, its family and its underlying data set."""

    task: str
    family: str
    dataset: str


def dataset_of(task: str | Any) -> str:
    """The underlying data set of a task (a name or a `Task`): "letter" for `letter-logreg(…)`, "fmnist"
    for every Fashion-MNIST task, "mnist1d", the corpus of a language task, or a synthetic function's base
    name ("rastrigin" for `rastrigin-20-noisy0.5`). Every variant of one data set shares it."""
    from lrcontrol.tasks import task_family
    from lrcontrol.tasks.params import split_name

    base = split_name(task if isinstance(task, str) else task.name)[0]
    family = task_family(base)  # raises a clear error for an unknown task
    if family == "synthetic":
        match = re.match(r"[a-z]+(?:1e\d)?", base)
        assert match is not None
        return match.group(0)
    return base.rsplit("-", 1)[0]


def instance(task: str) -> Instance:
    """The `Instance` of a task name (canonicalised: arguments in declared order, defaults dropped)."""
    from lrcontrol.tasks import get_task

    canonical = get_task(task).name
    return Instance(canonical, get_task(task).family, dataset_of(canonical))


def _args(**values: object) -> str:
    from lrcontrol.spec import format_value

    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items() if v is not None)


def _synthetic(rng: random.Random) -> str:
    if rng.random() < 0.75:
        function = rng.choice(_ANY_D)
        dims = rng.choice((2, 5, 10, 20, 50, 100, 500))
        name = f"{function}-{dims}"
    else:
        name = rng.choice(_TWO_D)
    noise = rng.choice((0.0, 0.0, 0.1, 0.5, 2.0))
    batch = None
    if noise > 0:
        name += "-noisy" if noise == 0.1 else f"-noisy{noise:g}"
        batch = rng.choice((1, 1, 4, 16))
    steps = rng.choice((100, 300, 1000))
    return f"{name}({_args(batch=batch, steps=steps, evals=16)})"


def _length(rng: random.Random, train: int, batch: int, max_steps: int) -> dict[str, int]:
    """steps= or epochs= (half each), within max_steps."""
    per_epoch = max(1, train // batch)
    if rng.random() < 0.5:
        epochs = [e for e in (1, 2, 5, 10, 20, 50, 100) if e * per_epoch <= max_steps]
        if epochs:
            return {"epochs": rng.choice(epochs)}
    return {"steps": rng.choice([s for s in (100, 200, 500, 1000, 2000) if s <= max_steps] or [max_steps])}


def _tabular(rng: random.Random) -> str:
    dataset = rng.choice(_TABULAR_SETS)
    model = rng.choice(("logreg", "mlp"))
    fraction = rng.choice((1.0, 1.0, 1.0, 0.3, 0.1)) if _TRAIN_SIZES[dataset] > 1000 else 1.0
    train = int(_TRAIN_SIZES[dataset] * fraction)
    batch = rng.choice([b for b in (8, 16, 32, 64, 128, 256) if b <= train // 2] or [8])
    inputs = rng.choices(("standard", "raw", "libsvm"), weights=(0.5, 0.25, 0.25))[0]
    head = "sigmoid" if inputs == "libsvm" and rng.random() < 0.5 else None
    width = depth = None
    if model == "mlp":
        width, depth = rng.choice((16, 64, 256)), rng.choice((1, 2, 3))
    noise = rng.choice((0.0, 0.0, 0.0, 0.1, 0.3))
    max_steps = MAX_STEPS["tabular"] if model == "logreg" or (width or 0) < 256 else 1500
    length = _length(rng, train, batch, max_steps)
    arguments = _args(
        batch=batch,
        fraction=None if fraction == 1.0 else fraction,
        **length,
        evals=16,
        width=width,
        depth=depth,
        label_noise=noise or None,
        head=head,
        inputs=None if inputs == "standard" else inputs,
    )
    return f"{dataset}-{model}({arguments})"


def _sequence(rng: random.Random) -> str:
    model = rng.choice(("mlp", "cnn"))
    fraction = rng.choice((1.0, 1.0, 0.3, 0.1))
    batch = rng.choice((16, 32, 100, 256))
    width = rng.choice((32, 100, 256)) if model == "mlp" else rng.choice((8, 16, 25))
    depth = rng.choice((1, 2, 3)) if model == "mlp" else None
    noise = rng.choice((0.0, 0.0, 0.1, 0.3))
    length = _length(rng, int(3500 * fraction), batch, MAX_STEPS["sequence"] if batch <= 100 else 300)
    arguments = _args(
        batch=batch, fraction=None if fraction == 1.0 else fraction, **length, evals=16,
        width=width, depth=depth, label_noise=noise or None,
    )  # fmt: skip
    return f"mnist1d-{model}({arguments})"


def _image(rng: random.Random) -> str:
    model = rng.choices(("mlp", "cnn", "finetune"), weights=(0.5, 0.3, 0.2))[0]
    if model == "finetune":
        fraction = rng.choice((1.0, 0.5, 0.2))
        batch = rng.choice((16, 32))
        return f"fmnist-finetune({_args(batch=batch, fraction=None if fraction == 1.0 else fraction, steps=rng.choice((100, 300)), evals=8)})"
    fraction = rng.choice((0.02, 0.05, 0.2))
    batch = rng.choice((32, 64, 128))
    width = rng.choice((32, 64, 128)) if model == "mlp" else rng.choice((4, 8))
    depth = rng.choice((1, 2)) if model == "mlp" else None
    steps = rng.choice((100, 200, 400)) if model == "mlp" else rng.choice((100, 200))
    noise = rng.choice((0.0, 0.0, 0.2))
    arguments = _args(
        batch=batch, fraction=fraction, steps=steps, evals=8, width=width, depth=depth, label_noise=noise or None
    )
    return f"fmnist-{model}({arguments})"


def _language(rng: random.Random) -> str:
    corpus = rng.choice(("shakespeare", "bbc"))
    arguments = _args(
        batch=rng.choice((4, 8, 16)),
        steps=rng.choice((100, 200, 300)),
        evals=8,
        width=rng.choice((16, 32)),
        depth=rng.choice((1, 2)),
        context=rng.choice((16, 32)),
    )
    return f"{corpus}-transformer({arguments})"


SAMPLERS: dict[str, Callable[[random.Random], str]] = {
    "synthetic": _synthetic,
    "tabular": _tabular,
    "sequence": _sequence,
    "image": _image,
    "language": _language,
}


def generate(n: int, seed: int = 0, families: Sequence[str] = FAMILIES) -> list[Instance]:
    """`n` distinct instances drawn with `seed` (the same arguments give the same list, in the same
    order), over `families` in the shares of `FAMILY_SHARES`, the "Revisiting" LIBSVM setting first.

    Raises LRControlError for n < 1 or an unknown family."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LRControlError(f"the number of instances must be a whole number ≥ 1, got {n!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise LRControlError(f"unknown families {unknown or 'none given'}; choose from {', '.join(FAMILIES)}")
    rng = random.Random(seed)
    chosen: dict[str, Instance] = {}
    if "tabular" in families:
        for name in REVISITING[:n]:
            found = instance(name)
            chosen[found.task] = found
    shares = {f: FAMILY_SHARES[f] for f in families}
    total = sum(shares.values())
    quotas = {f: round(n * s / total) for f, s in shares.items()}
    quotas[max(shares, key=shares.get)] += n - sum(quotas.values())  # type: ignore[arg-type]
    counts = {f: sum(1 for i in chosen.values() if i.family == f) for f in families}
    for family in families:
        attempts = 0
        while counts[family] < quotas[family] and attempts < 50 * n:
            attempts += 1
            found = instance(SAMPLERS[family](rng))
            if found.task not in chosen:
                chosen[found.task] = found
                counts[family] += 1
    return list(chosen.values())[:n]


def check_disjoint(train: Iterable[str], test: Iterable[str]) -> None:
    """Raise LRControlError if a training and a test task share an underlying data set (a leak: a
    leave-one-dataset-out split must hold every variant of a data set out together)."""
    shared = {dataset_of(t) for t in train} & {dataset_of(t) for t in test}
    if shared:
        raise LRControlError(f"training and test instances share the data sets {', '.join(sorted(shared))}")


def dataset_splits(instances: Iterable[Instance]) -> list[tuple[str, list[Instance], list[Instance]]]:
    """Leave-one-dataset-out: for each data set, (the data set, the other instances, its instances)."""
    items = list(instances)
    return [
        (d, [i for i in items if i.dataset != d], [i for i in items if i.dataset == d])
        for d in sorted({i.dataset for i in items})
    ]


def family_splits(instances: Iterable[Instance]) -> list[tuple[str, list[Instance], list[Instance]]]:
    """Leave-one-family-out: for each family, (the family, the other instances, its instances)."""
    items = list(instances)
    return [
        (f, [i for i in items if i.family != f], [i for i in items if i.family == f])
        for f in FAMILIES
        if any(i.family == f for i in items)
    ]
