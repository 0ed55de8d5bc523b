"""ALeRA / SALeRA / Ag-Adam: the update rule of METHODS.md §4.2 against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol
from lrcontrol.errors import LRControlError

ALPHA, C, LR = 0.5, 0.01, 0.1
RTOL = 1e-7
# Two tensors (2 and 3 parameters), three steps of fixed gradients: the first tensor keeps its
# direction (its path grows longer than a random walk's), the second one flips (its path shrinks).
# The paths are float32 tensors, so rates agree with the float64 hand computation to ~1e-8.
GRADS = [
    ([3.0, 4.0], [1.0, 0.0, 2.0]),
    ([3.0, 4.0], [-1.0, 0.0, -2.0]),
    ([6.0, 8.0], [2.0, 0.0, 4.0]),
]


def two_tensors() -> list[torch.Tensor]:
    return [torch.tensor([1.0, -1.0], requires_grad=True), torch.tensor([0.5, 0.0, 2.0], requires_grad=True)]


def step_with(optimizer, controller, tensors, grads, loss: float = 1.0) -> None:
    for p, g in zip(tensors, grads):
        p.grad = torch.tensor(g)
    optimizer.step()
    controller.step(loss)


def reference_alera(grads_per_step, alpha=ALPHA, c=C):
    """ALeRA by hand, one tensor = one layer: returns the rates used at each step."""
    paths = [[0.0] * len(g) for g in grads_per_step[0]]
    rates = [1.0] * len(paths)
    used = []
    for t, grads in enumerate(grads_per_step, start=1):
        for k, g in enumerate(grads):
            norm = math.sqrt(sum(x * x for x in g))
            paths[k] = [(1 - alpha) * p + alpha * x / norm for p, x in zip(paths[k], g)]
            mu = alpha / (2 - alpha) * (1 - (1 - alpha) ** (2 * t))
            sigma = alpha / math.sqrt(len(g))
            rates[k] *= math.exp(c / sigma * (sum(p * p for p in paths[k]) - mu))
        used.append(list(rates))
    return used


def test_first_steps_match_literal_values():
    # Step 1: p = α·u, so ‖p‖² = α² = μ_1 and nothing moves. Step 2 on the first tensor (same
    # direction): p = (0.45, 0.6), ‖p‖² = 0.5625, μ_2 = (1/3)(1 − 1/16) = 0.3125, σ = 0.5/√2.
    used = reference_alera(GRADS)
    assert used[0] == [1.0, 1.0]
    assert used[1][0] == pytest.approx(math.exp(0.01 / (0.5 / math.sqrt(2)) * (0.5625 - 0.3125)), rel=1e-12)
    # second tensor flipped: p = 0.25·u − 0.5·u = −0.25·u, ‖p‖² = 0.0625 < μ_2, σ = 0.5/√3
    assert used[1][1] == pytest.approx(math.exp(0.01 / (0.5 / math.sqrt(3)) * (0.0625 - 0.3125)), rel=1e-12)


def test_per_tensor_rates_and_parameters_follow_the_rule():
    tensors = two_tensors()
    start = [p.detach().clone() for p in tensors]
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"alera(alpha={ALPHA}, C={C}, layers='tensor', guard=False)")
    expected = [s.clone() for s in start]
    for grads, rates in zip(GRADS, reference_alera(GRADS)):
        step_with(optimizer, controller, tensors, grads)
        # each tensor moved with its own rate, used at the very step whose gradient updated it
        expected = [e - LR * r * torch.tensor(g) for e, r, g in zip(expected, rates, grads)]
        for p, e in zip(tensors, expected):
            torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)
        assert controller.observables()["0.alera.rates"] == pytest.approx(rates, rel=RTOL)
        # the group's LR carries the rate of its largest tensor (3 parameters against 2)
        assert controller.lrs[0] == pytest.approx(LR * rates[1], rel=RTOL)


def test_long_runs_fold_the_path_scale_without_changing_the_rule():
    # α = 0.5: the stored path scale (1 − α)^t drops below the fold point after 40 steps
    gen = torch.Generator().manual_seed(3)
    grads = [([float(x) for x in torch.randn(2, generator=gen)], [float(x) for x in torch.randn(3, generator=gen)])]
    for _ in range(59):
        # mostly the same direction, with noise, so the rates move both ways
        grads.append(tuple([x + 0.5 * float(torch.randn(1, generator=gen)) for x in g] for g in grads[0]))
    tensors = two_tensors()
    optimizer = torch.optim.SGD(tensors, lr=1e-3)
    controller = lrcontrol.control(optimizer, f"alera(alpha={ALPHA}, C={C}, layers='tensor', guard=False)")
    for step_grads, rates in zip(grads, reference_alera(grads)):
        step_with(optimizer, controller, tensors, step_grads)
        assert controller.factors[0].rates == pytest.approx(rates, rel=1e-6)
    assert max(controller.factors[0].path_scale) > 1e-12  # it was folded


def test_module_layers_pool_weight_and_bias_and_need_no_rescaling():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    # one param group per module: each group's multiplier is its layer's rate, no step is rescaled
    optimizer = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=LR)
    controller = lrcontrol.control(optimizer, "alera(alpha=0.5, C=0.01)", resources={"model": model})
    factor = controller.factors[0]
    assert factor.mode == "module" and factor.layer_of == [0, 0, 1, 1]
    x = torch.randn(8, 3)
    for _ in range(3):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        # by hand: one layer = weight and bias together, N_ℓ = their total size
        layer_norms = [math.sqrt(sum(float(g.pow(2).sum()) for g in grads[i : i + 2])) for i in (0, 2)]
        paths_before = factor.paths()
        before = [p.detach().clone() for p in model.parameters()]
        rates_before = list(factor.rates)
        optimizer.step()
        controller.step(1.0)
        for ell, (i, size) in enumerate(((0, 16), (2, 10))):
            p_new = [(1 - 0.5) * paths_before[j] + 0.5 * grads[j] / layer_norms[ell] for j in (i, i + 1)]
            sq = sum(float(p.pow(2).sum()) for p in p_new)
            t = factor.counts[ell]
            mu = 0.5 / 1.5 * (1 - 0.5 ** (2 * t))
            rate = rates_before[ell] * math.exp(0.01 / (0.5 / math.sqrt(size)) * (sq - mu))
            assert factor.rates[ell] == pytest.approx(rate, rel=RTOL)
            for j in (i, i + 1):
                torch.testing.assert_close(
                    list(model.parameters())[j].detach(), before[j] - LR * rate * grads[j], rtol=1e-6, atol=1e-7
                )
    assert factor._buffers == []  # never had to copy θ


def test_group_layers_set_each_groups_lr_directly():
    tensors = two_tensors()
    optimizer = torch.optim.SGD([{"params": [tensors[0]]}, {"params": [tensors[1]], "lr": 0.2}], lr=LR)
    controller = lrcontrol.control(optimizer, f"alera(alpha={ALPHA}, C={C}, layers='group', guard=False)")
    for grads, rates in zip(GRADS, reference_alera(GRADS)):
        step_with(optimizer, controller, tensors, grads)
        assert controller.lrs == pytest.approx([LR * rates[0], 0.2 * rates[1]], rel=RTOL)
    assert controller.factors[0]._buffers == []


def test_composes_with_a_schedule():
    tensors = two_tensors()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"warmup(3) + alera(alpha={ALPHA}, C={C}, layers='tensor', guard=False)")
    expected = [p.detach().clone() for p in tensors]
    for t, (grads, rates) in enumerate(zip(GRADS, reference_alera(GRADS))):
        step_with(optimizer, controller, tensors, grads)
        warm = (t + 1) / 3
        expected = [e - LR * warm * r * torch.tensor(g) for e, r, g in zip(expected, rates, grads)]
        for p, e in zip(tensors, expected):
            torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)


def test_ag_adam_scales_adams_own_step_while_the_path_uses_raw_gradients():
    tensors, twins = two_tensors(), two_tensors()
    optimizer = torch.optim.Adam(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"alera(alpha={ALPHA}, C={C}, layers='tensor', guard=False)")
    # the reference: Adam with one group per tensor, each group's LR set to the hand-computed rate
    reference = torch.optim.Adam([{"params": [p]} for p in twins], lr=LR)
    for grads, rates in zip(GRADS, reference_alera(GRADS)):
        step_with(optimizer, controller, tensors, grads)
        for group, rate in zip(reference.param_groups, rates):
            group["lr"] = LR * rate
        for p, g in zip(twins, grads):
            p.grad = torch.tensor(g)
        reference.step()
        for p, q in zip(tensors, twins):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)


def test_non_finite_gradient_skips_adaptation_and_restores():
    tensors = two_tensors()
    start = [p.detach().clone() for p in tensors]
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"alera(alpha={ALPHA}, C={C}, layers='tensor')")
    step_with(optimizer, controller, tensors, GRADS[0])
    factor = controller.factors[0]
    rates = list(factor.rates)
    step_with(optimizer, controller, tensors, ([math.nan, 1.0], [1.0, 2.0, 3.0]), loss=math.nan)
    assert factor.rates == rates and factor.skipped == 1 and factor.restores == 1
    for p, s in zip(tensors, start):  # back at the first checkpoint (taken before the first step)
        assert torch.equal(p.detach(), s)
    assert all(math.isfinite(lr) and lr > 0 for lr in controller.lrs)


@pytest.mark.parametrize(("third_loss", "alarm"), [(1.2, True), (1.1, False)])
def test_salera_page_hinkley_alarm_restores_and_halves(third_loss, alarm):
    # r = 1: L̄ is the loss itself. λ = 0.1·1.0. After 1.0, 1.0, x: mean(L̄) = (2 + x)/3 and
    # U = x − mean = 2(x − 1)/3: 0.133 > λ for x = 1.2 (alarm), 0.067 < λ for x = 1.1.
    tensors = two_tensors()
    start = [p.detach().clone() for p in tensors]
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(
        optimizer, f"salera(alpha={ALPHA}, C={C}, layers='tensor', smoothing=1.0, threshold=0.1)"
    )
    factor = controller.factors[0]
    for grads, loss in zip(GRADS, (1.0, 1.0, third_loss)):
        step_with(optimizer, controller, tensors, grads, loss=loss)
    rates = reference_alera(GRADS)[-1]
    assert factor.alarms == int(alarm)
    if alarm:
        assert controller.lrs[0] == pytest.approx(0.5 * LR * rates[1], rel=RTOL)
        for p, s in zip(tensors, start):
            assert torch.equal(p.detach(), s)
        assert factor.counts == [0, 0] and all(float(p.abs().sum()) == 0.0 for p in factor.path)
        assert factor.count == 0  # detector reset
    else:
        assert controller.lrs[0] == pytest.approx(LR * rates[1], rel=RTOL)


def test_rates_stay_within_bounds():
    tensors = two_tensors()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, "alera(alpha=0.5, C=100.0, layers='tensor', ceiling=4.0, guard=False)")
    for grads in GRADS:
        step_with(optimizer, controller, tensors, grads)
    rates = controller.factors[0].rates
    assert rates[0] == 4.0 and 0 < rates[1] < 1e-9


def test_module_layers_without_a_model_is_a_clear_error():
    optimizer = torch.optim.SGD(two_tensors(), lr=LR)
    with pytest.raises(LRControlError, match="needs the model"):
        lrcontrol.control(optimizer, "alera(layers='module')")


def test_the_examples_in_docs_online_md_run():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "online.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 2, "docs/online.md lost its examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)  # the examples assert what they show


def test_the_guard_stops_the_runaway_on_a_noise_free_sphere():
    # Noise-free gradients all agree, so the rate climbs past the stability limit (METHODS.md §4.1).
    def run(spec: str) -> tuple[float, float, float]:
        torch.manual_seed(0)
        theta = torch.randn(50, requires_grad=True)
        optimizer, controller = lrcontrol.build([theta], f"sgd(lr=0.01) + {spec}")
        losses = []
        for _ in range(300):
            loss = 0.5 * theta.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            controller.step(loss.detach())
            losses.append(float(loss.detach()))
        return losses[0], max(losses), losses[-1]

    start, worst, _ = run("alera(alpha=0.1, C=0.01, guard=False)")
    assert worst > 1e20 * start  # the runaway, unguarded
    start, worst, end = run("alera(alpha=0.1, C=0.01)")
    assert worst < 100 * start and end < 1e-6 * start


@pytest.mark.parametrize(
    "spec", ["alera(alpha=0.5, C=0.01, layers='tensor')", "salera(alpha=0.5, C=0.01, smoothing=1.0)"]
)
def test_resume_with_rescaled_steps_is_bit_identical(spec):
    # the conformance suite's groups are one module each (nothing rescaled); here every step is
    import pickle

    def rig():
        tensors = two_tensors()
        optimizer = torch.optim.Adam(tensors, lr=LR)
        return tensors, optimizer, lrcontrol.control(optimizer, spec)

    def grads(t):
        gen = torch.Generator().manual_seed(t)
        return ([float(x) for x in torch.randn(2, generator=gen)], [float(x) for x in torch.randn(3, generator=gen)])

    losses = [1.0, 1.0, 1.5, 0.9, 2.0, 0.8, 0.8, 0.7]
    tensors, optimizer, controller = rig()
    for t in range(8):
        step_with(optimizer, controller, tensors, grads(t), loss=losses[t])
        if t == 3:
            saved = pickle.dumps((tensors, optimizer.state_dict(), controller.state_dict()))
    other, other_opt, other_ctrl = rig()
    saved_tensors, opt_state, ctrl_state = pickle.loads(saved)
    with torch.no_grad():
        for p, q in zip(other, saved_tensors):
            p.copy_(q)
    other_opt.load_state_dict(opt_state)
    other_ctrl.load_state_dict(ctrl_state)
    for t in range(4, 8):
        step_with(other_opt, other_ctrl, other, grads(t), loss=losses[t])
    assert other_ctrl.lrs == controller.lrs
    for p, q in zip(tensors, other):
        assert torch.equal(p.detach(), q.detach())
    assert controller.factors[0]._buffers  # the rescaling path really ran
