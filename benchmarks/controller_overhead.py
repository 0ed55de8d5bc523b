"""What an online LR controller costs: optimizer-step and training-step time, with and without it.

One command, everything measured side by side in one process:

    python benchmarks/controller_overhead.py            # full run (a few minutes on one CPU thread)
    python benchmarks/controller_overhead.py --quick    # fewer repeats, for a smoke check
    python benchmarks/controller_overhead.py --json out.json

1. Optimizer step (`optimizer.step(); controller.step(loss)`) of foreach AdamW on MLPs of about 1M
   and 10M parameters, with fixed random gradients, bare and with each registered online controller
   (every registry entry of kind "online", at its default settings; the model is passed as a resource,
   as the run engine does).
2. Full training step (forward, loss, zero_grad, backward, step, controller) of the project's
   tasks at their default sizes, on random inputs of their shapes: the Fashion-MNIST MLP
   784-256-128-10 at batch 128 (`fmnist-mlp`), the Fashion-MNIST CNN conv16-conv32-linear at batch 64
   (`fmnist-cnn`) and the character transformer (2 layers of width 64, context 64, Shakespeare's
   84-character vocabulary) at batch 16 (`shakespeare-transformer`).

Beside the controllers run three reference variants that are not controllers: "floor:copy" (a copy of
the parameters before each step, the least work that can read the step actually taken),
"floor:capture" (copy, difference, per-tensor norms: the capture every online controller shares) and
"floor:direction" (CLARA's tensor work on AdamW's exact direction — three passes for m/(√v + ε), the
norms, the path's lerp and its norms — with no Python logic around it). They show how much of a
controller's cost any exact step-reading method, and any exact-direction CLARA in eager PyTorch, must
pay on this machine.

Variants are interleaved repeat by repeat (so drifts in machine load hit them alike); each repeat
times a block of steps; the table reports the median time per step and its ratio to the bare
AdamW step. The clock is the process's CPU time by default (`--clock cpu`): with one torch thread
that is the time the step itself took, without the time the process waited while other processes
held the core (on a shared machine that waiting is most of the noise of wall-clock times; contention
for the caches and memory bandwidth still shows). `--clock wall` times wall-clock seconds instead.

Denormal floats are flushed to zero (`torch.set_flush_denormal(True)`; `--keep-denormals` keeps
them). The training steps repeat one random batch, which a variant that raises η fast memorises
(hypergradient descent drove its loss to exactly 0 within 50 steps); the gradients of such a batch
are partly subnormal numbers, on which the CPU's arithmetic is many times slower, so without the flush
the table timed that variant's trajectory rather than its controller (hypergradient's MLP training
step: 1.62× with subnormals, against 1.46× for its optimizer step). Targets (issue 16): optimizer step ≤ 1.6×; training step ≤ 1.03× on the CNN and the
transformer, and on the MLP (whose optimizer step is a large part of its training step) within 0.05
of "floor:capture".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

import lrcontrol
from lrcontrol.control.direction import LARGE_TENSOR
from lrcontrol.errors import LRControlError
from lrcontrol.registry import entries

MODELS = {
    "mlp-1M": [784, 768, 512, 256, 10],  # 1.13M parameters
    "mlp-10M": [3072, 2048, 1536, 512, 10],  # 10.2M parameters
}
FASHION_MLP = [784, 256, 128, 10]


def mlp(widths: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def online_specs() -> list[tuple[str, str]]:
    return [("adamw", "")] + [(e.name, f"{e.name}()") for e in entries("online")] + list(FLOORS.items())


#: Reference variants, not controllers: the least tensor work a controller that reads the step the
#: optimizer actually took must do. "floor:copy" copies θ before each step (nothing can compute
#: Δθ = θ_after − θ_before with less); "floor:capture" is the whole capture the online controllers share
#: (copy before, difference after, one norm per tensor, one host sync) and nothing else.
#: "floor:direction" is the tensor work of CLARA reading AdamW's exact direction, with no Python logic
#: around it: s = m/(√v + ε) (three foreach passes), ‖s‖ per tensor, p ← lerp(p, s, c), ‖p‖ per tensor,
#: two host syncs — what any exact-direction CLARA in eager PyTorch pays on these tensors.
FLOORS = {"floor:copy": "<copy>", "floor:capture": "<capture>", "floor:direction": "<direction>"}


def attach_floor(optimizer: torch.optim.Optimizer, what: str) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if what == "<direction>":
        paths = [torch.zeros_like(p) for p in params]

        # as CLARA does: the large tensors' directions in buffers kept across steps (allocating them every
        # step costs page faults), the small ones by three foreach calls together
        large = [k for k, p in enumerate(params) if p.numel() >= LARGE_TENSOR]
        small = [k for k, p in enumerate(params) if p.numel() < LARGE_TENSOR]
        buffers = {k: torch.empty_like(params[k]) for k in large}

        def direction(opt, args, kwargs):
            with torch.no_grad():
                states = [opt.state[p] for p in params]
                beta2, eps = opt.param_groups[0]["betas"][1], opt.param_groups[0]["eps"]
                # m̂/(√v̂ + ε) ∝ m/(√v + ε·√(1 − β₂ᵗ)), as CLARA computes it
                epsilons = [eps * (1 - beta2 ** float(st["step"])) ** 0.5 for st in states]
                steps: list[torch.Tensor] = [torch.empty(0)] * len(params)
                for k in large:
                    torch.sqrt(states[k]["exp_avg_sq"], out=buffers[k])
                    buffers[k].add_(epsilons[k])
                    steps[k] = torch.div(states[k]["exp_avg"], buffers[k], out=buffers[k])
                if small:
                    denominators = torch._foreach_sqrt([states[k]["exp_avg_sq"] for k in small])
                    torch._foreach_add_(denominators, [epsilons[k] for k in small])
                    for k, s in zip(small, torch._foreach_div([states[k]["exp_avg"] for k in small], denominators)):
                        steps[k] = s
                torch.stack(torch._foreach_norm(steps)).tolist()
                torch._foreach_lerp_(paths, steps, 0.2)
                torch.stack(torch._foreach_norm(paths)).tolist()

        optimizer.register_step_post_hook(direction)
        return
    before = [p.detach().clone() for p in params]

    def pre(opt, args, kwargs):
        with torch.no_grad():
            torch._foreach_copy_(before, params)

    def post(opt, args, kwargs):
        with torch.no_grad():
            torch._foreach_sub_(before, params)
            torch.stack(torch._foreach_norm(before)).tolist()

    optimizer.register_step_pre_hook(pre)
    if what == "<capture>":
        optimizer.register_step_post_hook(post)


def transformer() -> torch.nn.Module:
    from lrcontrol.tasks.language import CharTransformer

    return CharTransformer(TRANSFORMER_VOCAB, context=64, width=64, layers=2, heads=4)


def cnn() -> torch.nn.Module:
    from lrcontrol.tasks.image import small_cnn

    return small_cnn()


#: the training-step workloads: model factory, batch of random inputs and targets (shapes of the tasks)
TRANSFORMER_VOCAB = 84
TRAINING = {
    "Fashion-MNIST MLP 784-256-128-10, batch 128": (
        lambda: mlp(FASHION_MLP),
        lambda g: (torch.randn(128, 784, generator=g), torch.randint(0, 10, (128,), generator=g)),
    ),
    "Fashion-MNIST CNN conv16-conv32-linear, batch 64": (
        cnn,
        lambda g: (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)),
    ),
    "Shakespeare transformer 2×64, context 64, batch 16": (
        transformer,
        lambda g: (
            torch.randint(0, TRANSFORMER_VOCAB, (16, 64), generator=g),
            torch.randint(0, TRANSFORMER_VOCAB, (16, 64), generator=g),
        ),
    ),
}


def make(widths: list[int] | Callable[[], torch.nn.Module], spec: str, seed: int = 0):
    torch.manual_seed(seed)
    model = widths() if callable(widths) else mlp(widths)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    controller = None
    if spec in FLOORS.values():
        attach_floor(optimizer, spec)
    elif spec:
        controller = lrcontrol.control(optimizer, spec, total_steps=10**6, resources={"model": model})
    return model, optimizer, controller


def optimizer_step_runner(widths: list[int], spec: str) -> Callable[[int], None]:
    model, optimizer, controller = make(widths, spec)
    gen = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2

    def run(steps: int) -> None:
        for _ in range(steps):
            optimizer.step()
            if controller is not None:
                controller.step(1.0)

    return run


def training_step_runner(workload: str, spec: str) -> Callable[[int], None]:
    factory, batch = TRAINING[workload]
    model, optimizer, controller = make(factory, spec)
    x, y = batch(torch.Generator().manual_seed(2))

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, -2), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if controller is not None:
                controller.step(loss)

    return run


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(
    runners: dict[str, Callable[[int], None]], steps: int, repeats: int, clock: Callable[[], float] = time.process_time
) -> dict[str, float]:
    """Median seconds per step of each runner, interleaving the runners in every repeat."""
    for run in runners.values():  # warm-up: allocations, first checkpoints, caches
        run(max(2, steps // 2))
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = clock()
            run(steps)
            times[name].append((clock() - start) / steps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not every platform has one
        return "n/a"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} on CPU, "
        f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke check, noisier)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", default="", help="run only the training steps whose name contains this (e.g. CNN)")
    parser.add_argument("--no-optimizer-step", action="store_true", help="skip the optimizer-step cases")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 21, 5 with --quick)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what to time (default: CPU time)")
    parser.add_argument("--keep-denormals", action="store_true", help="do not flush subnormal floats to zero")
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give at least 1")
    torch.set_num_threads(args.threads)
    flushed = torch.set_flush_denormal(not args.keep_denormals) and not args.keep_denormals
    repeats = args.repeats or (5 if args.quick else 21)
    specs = online_specs()
    results: dict[str, dict[str, float]] = {}
    cases: list[tuple[str, object, Callable]] = [
        (f"optimizer step, {name}", widths, optimizer_step_runner)
        for name, widths in MODELS.items()
        if not args.no_optimizer_step
    ]
    cases += [(f"training step, {name}", name, training_step_runner) for name in TRAINING if args.only in name]
    print(machine())
    print(f"clock: {args.clock}; denormals {'flushed' if flushed else 'kept'}; load average {load_average()}")
    load_before = load_average()
    for title, workload, factory in cases:
        runners = {}
        for label, spec in specs:
            try:
                runners[label] = factory(workload, spec)
            except LRControlError as error:  # a controller that cannot attach here is reported, not fatal
                print(f"  {label}: could not be attached: {error}")
        model = mlp(workload) if factory is optimizer_step_runner else TRAINING[workload][0]()
        params = sum(p.numel() for p in model.parameters())
        steps = max(2, int(2e7 // params)) if factory is optimizer_step_runner else 20
        medians = measure(runners, steps, repeats, CLOCKS[args.clock])
        base = medians["adamw"]
        mlp_floor = factory is training_step_runner and "MLP" in title and "floor:capture" in medians
        # the MLP's target is relative to the capture floor (its optimizer step is a large share of its step)
        target = 1.6 if factory is optimizer_step_runner else 1.03
        if mlp_floor:
            target = medians["floor:capture"] / base + 0.05
        print(f"\n{title} ({params / 1e6:.2f}M parameters; {repeats} interleaved repeats of {steps} steps)")
        print(
            f"  {'variant':<16}{'ms/step':>10}{'ratio':>9}   target ≤ {target:.3f}×"
            + (" (floor:capture + 0.05)" if mlp_floor else "")
        )
        for label in runners:
            ratio = medians[label] / base
            if label == "adamw":
                flag = ""
            elif label in FLOORS:
                flag = "  (reference: no controller does less)"
            else:
                flag = "  ok" if ratio <= target else "  MISSED"
            print(f"  {label:<16}{1e3 * medians[label]:>10.3f}{ratio:>8.3f}×{flag}")
        results[title] = dict(medians)
    print(f"\nload average before: {load_before}; after: {load_average()} (1, 5 and 15 minutes)")
    if args.json:
        settings = {"clock": args.clock, "denormals_flushed": flushed, "repeats": repeats}
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine(),
                    "settings": settings,
                    "load_average": {"before": load_before, "after": load_average()},
                    "seconds_per_step": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
