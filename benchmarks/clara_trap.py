"""CLARA's trap: ReLU networks that a large η pushed into a dead or chaotic state. Traces and the detector.

Runs ReLU MLPs with CLARA (several dampings, d="auto", with and without the runaway guard) from
η0 ∈ {1e-6, …, 1} with SGD and Adam, records every step's loss, LR and path ratio R, and the final
test accuracy. Then it replays `lrcontrol.control.trap.TrapDetector` on every trace (the same object
`clara(trap=...)` runs online) and reports:

- its catch rate on the *trapped* runs: final test accuracy within 2 points of chance and final η ≥ 1
  (with SGD; with Adam, η ≥ 0.1: Adam's steps are ~η per coordinate, so η = 0.1 is already huge);
- its false-alarm rate on the *healthy* runs: final accuracy more than 10 points above chance;
- the remaining runs (stuck at chance with a small η: a rescue that did not finish) separately.

Task sets: "design" (Fashion-MNIST, MNIST-1D, optdigits MLPs: the detector's constants were chosen on
these) and "held-out" (MLPs on letter, pendigits, satimage and texture: never run as MLPs before the
constants were fixed).

    python benchmarks/clara_trap.py --tasks design --json design.json
    python benchmarks/clara_trap.py --tasks held-out --json held.json
    python benchmarks/clara_trap.py --from-json held.json       # re-evaluate the detector, run nothing

One process, one torch thread. Not a test: it prints markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from clara_auto_d import _load  # noqa: E402  (the same data preparation as the d="auto" study)

LRS = tuple(10.0**k for k in range(-6, 1))
SETS = {
    "design": ("fashion_mlp", "mnist1d_mlp", "optdigits_mlp"),
    "held-out": ("letter_mlp", "pendigits_mlp", "satimage_mlp", "texture_mlp"),
}
HIDDEN = (100, 100)
METHODS = ("clara(d=0.1)", "clara(d=0.01)", "clara(d='auto')", "clara(d=0.1, guard=False)")
STEPS, BATCH, FASHION_TRAIN = 200, 128, 6_000


def widths(task: str, features: int, classes: int) -> tuple[int, ...]:
    return (features, 256, 128, classes) if task == "fashion_mlp" else (features, *HIDDEN, classes)


def run(task: str, optimizer: str, lr: float, seed: int, method: str) -> dict:
    import torch

    import lrcontrol

    xtr, ytr, xte, yte, classes = _load(task, FASHION_TRAIN)
    torch.manual_seed(seed)
    sizes = widths(task, xtr.shape[1], classes)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = torch.nn.Sequential(*layers)
    opt, ctl = lrcontrol.build(model.parameters(), f"{optimizer}(lr={lr:g}) + {method}", total_steps=STEPS)
    clara = ctl.factors[-1]
    gen = torch.Generator().manual_seed(1000 + seed)
    order, pos = torch.randperm(len(xtr), generator=gen), 0
    losses, lrs, ratios = [], [], []
    for _ in range(STEPS):
        if pos + BATCH > len(order):
            order, pos = torch.randperm(len(xtr), generator=gen), 0
        idx = order[pos : pos + BATCH]
        pos += BATCH
        loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lrs.append(ctl.lrs[0])  # the LR of this step
        opt.step()
        ctl.step(loss)
        losses.append(float(loss))
        ratios.append(float(clara.ratio))
    with torch.no_grad():
        logits = model(xte)
        finite = bool(torch.isfinite(logits).all())
        acc = float((logits.argmax(1) == yte).float().mean()) if finite else 1.0 / classes
    return {
        "task": task,
        "optimizer": optimizer,
        "lr": lr,
        "seed": seed,
        "method": method,
        "classes": classes,
        "acc": 100.0 * acc,
        "final_lr": ctl.lrs[0],
        "loss": losses,
        "lrs": lrs,
        "ratio": ratios,
        "ratio_max": len(clara.mu) / clara.mu_total,  # R when every tensor's steps are perfectly aligned
    }


def outcome(r: dict) -> str:
    chance = 100.0 / r["classes"]
    big = 1.0 if r["optimizer"] == "sgd" else 0.1
    if r["acc"] <= chance + 2.0:
        return "trapped" if r["final_lr"] >= big else "stuck"
    return "healthy" if r["acc"] > chance + 10.0 else "weak"


_RATIO_MAX: dict[tuple[str, str], float] = {}


def ratio_max(r: dict) -> float:
    """K/Σμ of the run's model and optimizer (traces of an older version of this script lack it)."""
    if "ratio_max" in r:
        return r["ratio_max"]
    key = (r["task"], r["optimizer"])
    if key not in _RATIO_MAX:
        import torch

        import lrcontrol

        xtr, _, _, _, classes = _load(r["task"], FASHION_TRAIN)
        sizes = widths(r["task"], xtr.shape[1], classes)
        params = [p for a, b in zip(sizes[:-1], sizes[1:]) for p in torch.nn.Linear(a, b).parameters()]
        _, ctl = lrcontrol.build(params, f"{r['optimizer']}(lr=0.1) + clara()")
        _RATIO_MAX[key] = len(ctl.factors[-1].mu) / ctl.factors[-1].mu_total
    return _RATIO_MAX[key]


def replay(r: dict, **constants: float) -> int | None:
    """The step at which the detector fires on this trace, or None."""
    from lrcontrol.control.trap import TrapDetector

    det = TrapDetector(**constants)
    top = ratio_max(r)
    for t, (loss, ratio) in enumerate(zip(r["loss"], r["ratio"])):
        if det.update(loss, ratio, top):
            return t
    return None


def evaluate(records: list[dict]) -> str:
    lines = []
    groups: dict[tuple[str, str], list[tuple[str, int | None, dict]]] = {}
    for r in records:
        groups.setdefault((r["task"], r["optimizer"]), []).append((outcome(r), replay(r), r))
    lines.append("| task | optimizer | trapped: caught | healthy: false alarms | stuck: fired | weak: fired |")
    lines.append("|---|---|---:|---:|---:|---:|")
    totals = {k: [0, 0] for k in ("trapped", "healthy", "stuck", "weak")}
    for (task, opt), items in groups.items():
        cells = []
        for kind in ("trapped", "healthy", "stuck", "weak"):
            sel = [fired for o, fired, _ in items if o == kind]
            hits = sum(f is not None for f in sel)
            totals[kind][0] += hits
            totals[kind][1] += len(sel)
            cells.append(f"{hits}/{len(sel)}")
        lines.append(f"| {task} | {opt} | " + " | ".join(cells) + " |")
    lines.append(
        "| **all** | | "
        + " | ".join(f"**{h}/{n}**" + (f" ({100 * h / n:.0f} %)" if n else "") for h, n in totals.values())
        + " |"
    )
    missed = [r for items in groups.values() for o, f, r in items if o == "trapped" and f is None]
    false = [(f, r) for items in groups.values() for o, f, r in items if o == "healthy" and f is not None]
    for r in missed:
        lines.append(
            f"\nmissed: {r['task']} {r['optimizer']} η0={r['lr']:g} seed {r['seed']} {r['method']}: "
            f"{r['acc']:.1f} %, final η {r['final_lr']:.3g}"
        )
    for f, r in false:
        lines.append(
            f"\nfalse alarm at step {f}: {r['task']} {r['optimizer']} η0={r['lr']:g} seed {r['seed']} "
            f"{r['method']}: {r['acc']:.1f} %"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="design", help="design or held-out")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", default=None, help="write every trace to this file")
    parser.add_argument("--from-json", default=None, help="evaluate the detector on saved traces, run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        print(evaluate(json.loads(Path(args.from_json).read_text())))
        return 0
    if args.tasks not in SETS:
        parser.error(f"--tasks must be one of {', '.join(SETS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    cells = [
        c
        for c in itertools.product(SETS[args.tasks], ("sgd", "adam"), LRS, range(args.seeds), METHODS)
        if c[0] != "fashion_mlp" or c[3] == 0
    ]
    start, records = time.perf_counter(), []
    for i, cell in enumerate(cells, 1):
        records.append(run(*cell))
        print(f"\r{i}/{len(cells)} runs, {time.perf_counter() - start:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(records))
    print(f"# {len(records)} runs, {time.perf_counter() - start:.0f} s\n")
    print(evaluate(records))
    return 0 if all(math.isfinite(r["acc"]) for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
