"""benchmarks/controller_overhead.py's reference floors: each runs on a real optimizer step, and
floor:direction does the tensor work of CLARA's exact Adam direction (its path is CLARA's after a step; the
model has a tensor above LARGE_TENSOR, read into a kept buffer, and small ones, read by foreach calls)."""

from __future__ import annotations

import benchmark_scripts
import torch

import lrcontrol


def _bench():
    return benchmark_scripts.load("controller_overhead")


def test_every_floor_runs_on_an_adamw_step():
    bench = _bench()
    for what in bench.FLOORS.values():
        torch.manual_seed(0)
        model = bench.mlp([256, 160, 4])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
        bench.attach_floor(optimizer, what)
        for _ in range(2):
            for p in model.parameters():
                p.grad = torch.randn_like(p)
            optimizer.step()


def test_floor_direction_reads_the_direction_clara_reads():
    """After one step the floor's path is c·s (c = 0.2, p₀ = 0) with s AdamW's direction unnormalised:
    normalised, it is CLARA's path ŝ after its first step."""
    bench = _bench()
    torch.manual_seed(0)
    model = bench.mlp([256, 160, 4])
    twin = bench.mlp([256, 160, 4])
    twin.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    paths: list[torch.Tensor] = []
    original = bench.torch._foreach_lerp_

    def spy(tensors, others, weight):
        original(tensors, others, weight)
        paths[:] = tensors

    bench.torch._foreach_lerp_ = spy
    try:
        bench.attach_floor(optimizer, "<direction>")
        grads = [torch.randn_like(p) for p in model.parameters()]
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        optimizer.step()
    finally:
        bench.torch._foreach_lerp_ = original
    other = torch.optim.AdamW(twin.parameters(), lr=1e-3, foreach=True)
    controller = lrcontrol.control(other, "clara(d=0.01)")
    for p, g in zip(twin.parameters(), grads):
        p.grad = g.clone()
    other.step()
    controller.step(1.0)
    for floor_path, clara_path in zip(paths, controller.factors[-1].paths):
        a, b = floor_path.double(), clara_path.double()  # float64 norms: a float32 norm of 40 960 terms is off by ~1e-5
        assert float((a / a.norm() - b / b.norm()).norm()) < 1e-6
