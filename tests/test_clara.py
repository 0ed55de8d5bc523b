"""CLARA (METHODS.md §4.1): update rules by hand, the noise references, and the 50-d sphere."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lrcontrol
from lrcontrol.control.clara import (
    AUTO_RATE,
    AUTO_RHO,
    AUTO_Z0,
    Clara,
    auto_rate,
    momentum_reference_limit,
    reference_moments,
    sgd_reference,
)

C = 0.2
SGD_MU = C / (2 - C)

# Two tensors, three steps: fixed gradients fed by hand.
SHAPES = [(2, 3), (4,)]
GRADS = [
    [np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]), np.array([1.0, 1.0, -1.0, 2.0])],
    [np.array([[1.0, -1.5, 0.5], [0.5, 1.0, 2.0]]), np.array([-1.0, 2.0, 1.0, 0.0])],
    [np.array([[-1.0, 2.0, 0.0], [0.0, -1.0, -3.0]]), np.array([0.5, 1.0, -1.0, 2.0])],
]


def _run_by_hand_rig(spec: str):
    """Three steps of `spec` on two tensors with the fixed gradients; returns params and LRs per step."""
    torch.manual_seed(0)
    tensors = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in SHAPES]
    opt, ctl = lrcontrol.build(tensors, spec)
    params, lrs = [], []
    for grads in GRADS:
        for t, g in zip(tensors, grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        ctl.step(1.0)
        params.append([t.detach().numpy().copy() for t in tensors])
        lrs.append(ctl.lrs[0])
    return params, lrs, ctl.factors[-1]


def _expected(directions_of, base_lr: float, rule, unit: bool = False):
    """Hand computation: θ, p and η over the three steps. directions_of(step, θ) → list of s (Δθ = −η·s)."""
    theta = [np.zeros(s) for s in SHAPES]
    paths = [np.zeros(s) for s in SHAPES]
    eta = base_lr
    params, lrs = [], []
    for step in range(3):
        s = directions_of(step)
        s_hat = [v / np.linalg.norm(v) for v in s]
        theta = [th - eta * (sh if unit else v) for th, v, sh in zip(theta, s, s_hat)]
        paths = [(1 - C) * p + C * sh for p, sh in zip(paths, s_hat)]
        eta = eta * math.exp(rule(sum(float((p * p).sum()) for p in paths)))
        params.append(theta)
        lrs.append(eta)
    return params, lrs


def _check(params, lrs, exp_params, exp_lrs):
    for got, want in zip(params, exp_params):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lrs, exp_lrs, rtol=1e-12)


@pytest.mark.parametrize("variant", ["plain", "unit"])
def test_sgd_update_rule_matches_hand_computation(variant):
    d = 0.05
    params, lrs, _ = _run_by_hand_rig(f"sgd(lr=0.1) + clara(d={d}, variant='{variant}')")
    rule = lambda path_sq: d * (path_sq / (2 * SGD_MU) - 1.0)  # noqa: E731  R against K·μ, K = 2
    exp_params, exp_lrs = _expected(lambda step: GRADS[step], 0.1, rule, unit=variant == "unit")
    _check(params, lrs, exp_params, exp_lrs)


def test_auto_d_rule_matches_hand_computation():
    params, lrs, factor = _run_by_hand_rig("sgd(lr=0.1) + clara(d='auto')")
    sigmas = [2 * SGD_MU * (1 - C) / math.sqrt((1 + (1 - C) ** 2) * n) for n in (6, 4)]  # exact σ, METHODS §4.1
    sigma_total = math.sqrt(sum(s * s for s in sigmas))
    z0 = max(AUTO_Z0, AUTO_RHO * 2 * SGD_MU / sigma_total)
    rule = lambda path_sq: AUTO_RATE * math.tanh((path_sq - 2 * SGD_MU) / sigma_total / z0)  # noqa: E731
    exp_params, exp_lrs = _expected(lambda step: GRADS[step], 0.1, rule)
    _check(params, lrs, exp_params, exp_lrs)
    assert factor.sigma_total == pytest.approx(sigma_total, rel=1e-12)


def test_auto_rate_crosses_six_decades_in_a_quarter_of_the_run():
    assert auto_rate(None) == AUTO_RATE
    assert auto_rate(1000) == pytest.approx(4 * math.log(1e6) / 1000)
    assert auto_rate(100) == 0.2 and auto_rate(10**6) == 0.02


def test_auto_saturation_never_starts_before_r_minus_one_reaches_rho():
    """On a large model the path is nearly noise-free; z_0 then follows R − 1 = ±ρ, not 2σ."""
    tensors = [torch.nn.Parameter(torch.zeros(n)) for n in (50_000, 500, 10)]
    _, ctl = lrcontrol.build(tensors, "sgd(lr=0.1) + clara(d='auto')")
    factor = ctl.factors[-1]
    assert factor.mu_total / factor.sigma_total > AUTO_Z0 / AUTO_RHO
    assert factor.auto_z0 == pytest.approx(AUTO_RHO * factor.mu_total / factor.sigma_total)


def test_adam_update_rule_uses_adams_own_normalised_steps():
    d = 0.05
    params, lrs, factor = _run_by_hand_rig(f"adam(lr=0.1) + clara(d={d})")
    mu_total = sum(factor.mu)
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    adam_dirs = []
    for step, grads in enumerate(GRADS, start=1):
        m = [b1 * a + (1 - b1) * g for a, g in zip(m, grads)]
        v = [b2 * a + (1 - b2) * g * g for a, g in zip(v, grads)]
        adam_dirs.append([(a / (1 - b1**step)) / (np.sqrt(w / (1 - b2**step)) + eps) for a, w in zip(m, v)])
    rule = lambda path_sq: d * (path_sq / mu_total - 1.0)  # noqa: E731
    exp_params, exp_lrs = _expected(lambda step: adam_dirs[step], 0.1, rule)
    _check(params, lrs, exp_params, exp_lrs)


def _adam_noise_mu(n: int, rows: int, seed: int, burn_in: int = 150, samples: int = 500) -> float:
    """Our own Monte-Carlo: Adam's formula (β = 0.9, 0.999) on N(0, I) gradients, normalised steps,
    the path with c = 0.2, stationary mean of ‖p‖² over rows and steps."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.zeros(rows, n, dtype=torch.float64)
    v = torch.zeros(rows, n, dtype=torch.float64)
    p = torch.zeros(rows, n, dtype=torch.float64)
    total, count = 0.0, 0
    for t in range(1, burn_in + samples + 1):
        g = torch.randn(rows, n, generator=gen, dtype=torch.float64)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
        p = (1 - C) * p + C * step / step.norm(dim=1, keepdim=True)
        if t > burn_in:
            total += float(p.square().sum())
            count += rows
    return total / count


@pytest.mark.parametrize("n", [2, 15, 650, 100_000])
def test_adam_reference_mu_agrees_with_an_independent_monte_carlo(n):
    rows = max(1, 40_000 // n)
    ours = _adam_noise_mu(n, rows, seed=7, samples=500 if n < 10_000 else 100)
    tensors = [torch.nn.Parameter(torch.zeros(n))]
    mus, sigmas = reference_moments(torch.optim.Adam(tensors), [0], [n], C)
    assert mus[0] == pytest.approx(ours, rel=0.01)
    assert sigmas[0] > 0
    if n >= 650:  # the high-dimensional closed form (METHODS §4.1)
        assert mus[0] == pytest.approx(momentum_reference_limit(C, 0.9), rel=0.01)


def test_any_optimizer_gets_the_reference_of_its_own_momentum():
    """RMSprop has no momentum: its steps on noise are uncorrelated (μ = c/(2 − c)); SGD with momentum β
    and Adam with β1 follow the momentum closed form in high dimension."""
    n = 4096
    tensors = [torch.nn.Parameter(torch.zeros(n))]
    cases = [
        (torch.optim.RMSprop(tensors, lr=0.01), SGD_MU),
        (torch.optim.SGD(tensors, lr=0.01, momentum=0.9), momentum_reference_limit(C, 0.9)),
        (torch.optim.Adam(tensors, betas=(0.5, 0.999)), momentum_reference_limit(C, 0.5)),
    ]
    for opt, expected in cases:
        mus, _ = reference_moments(opt, [0], [n], C)
        assert mus[0] == pytest.approx(expected, rel=0.02), type(opt).__name__


def test_sgd_reference_is_exact_for_every_size():
    for n in (1, 2, 7, 10**9):
        mu, sigma = sgd_reference(C, n)
        assert mu == pytest.approx(1 / 9)
        assert sigma == pytest.approx(2 * mu * 0.8 / math.sqrt(1.64 * n))


def _sphere(spec: str, noise: float, steps: int, seed: int = 0):
    """SGD on f(x) = ‖x + ξ‖², x ∈ R^50, ξ ~ N(0, noise²·I); returns (‖x_T‖²/‖x_0‖², η0, η_T, max η)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.Parameter(torch.randn(50, generator=gen))
    opt, ctl = lrcontrol.build([x], spec)
    f0, eta0, eta_max = float(x.detach().square().sum()), ctl.lrs[0], ctl.lrs[0]
    for _ in range(steps):
        loss = (x + noise * torch.randn(50, generator=gen)).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        eta_max = max(eta_max, ctl.lrs[0])
    return float(x.detach().square().sum()) / f0, eta0, ctl.lrs[0], eta_max, ctl


def test_sphere_with_noise_plain_clara_rescues_a_tiny_initial_lr():
    ratio, eta0, _, eta_max, _ = _sphere("sgd(lr=1e-6) + clara(d=1e-3)", noise=0.1, steps=5000)
    assert eta_max >= 1000 * eta0
    assert ratio < 1e-3


def test_sphere_with_noise_unit_step_clara_shrinks_a_huge_initial_lr():
    ratio, eta0, eta_end, _, _ = _sphere("sgd(lr=10) + clara(d=1e-3, variant='unit')", noise=0.1, steps=5000)
    assert eta_end <= eta0 / 10
    assert ratio < 1e-2


def test_sphere_without_noise_the_guard_stops_the_runaway():
    """Noise-free, consistent steps keep raising η past the stability limit (METHODS §4.1); with d = 0.1
    the unguarded run blows the loss up by more than 1e10; the guard restores and halves."""
    worst_unguarded = _sphere_worst("sgd(lr=1e-2) + clara(d=0.1, guard=False)")
    worst_guarded, final, restores = _sphere_worst("sgd(lr=1e-2) + clara(d=0.1)", with_final=True)
    assert worst_unguarded > 1e10
    assert worst_guarded < 1e4
    assert restores >= 1
    assert final < 1e-6


def _sphere_worst(spec: str, steps: int = 600, with_final: bool = False):
    x = torch.nn.Parameter(torch.randn(50, generator=torch.Generator().manual_seed(123)))
    opt, ctl = lrcontrol.build([x], spec)
    f0, worst = float(x.detach().square().sum()), 0.0
    for _ in range(steps):
        loss = x.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        worst = max(worst, float(x.detach().square().sum()) / f0)
        assert all(math.isfinite(lr) and lr > 0 for lr in ctl.lrs)
    if with_final:
        return worst, float(x.detach().square().sum()) / f0, ctl.factors[-1].restores
    return worst


def test_composes_with_warmup():
    ratio, eta0, eta_end, _, ctl = _sphere("sgd(lr=1e-4) + warmup(100) + clara()", noise=0.1, steps=1500)
    (_, warm), (_, clara) = ctl.factor_multipliers()
    assert warm == [1.0]
    assert ctl.lrs[0] == pytest.approx(1e-4 * clara[0], rel=1e-12)
    assert clara[0] > 10  # CLARA raised η on top of the warmed-up base
    assert ratio < 0.1
    assert isinstance(ctl.factors[-1], Clara)


def test_the_scaled_path_is_the_path_and_old_states_still_load():
    """p is kept as a·z; `paths` gives p back, and a state that stored p itself (lrcontrol 0.1.0) loads."""
    params, lrs, factor = _run_by_hand_rig("sgd(lr=0.1) + clara(d=0.01, guard=False)")
    # by hand: p ← (1 − c)·p + c·ŝ over the three steps, from the recorded parameters
    previous = [np.zeros(s) for s in SHAPES]
    paths = [np.zeros(s) for s in SHAPES]
    for step_params in params:
        for k, (new, old) in enumerate(zip(step_params, previous)):
            move = old - new
            paths[k] = (1 - C) * paths[k] + C * move / np.linalg.norm(move)
        previous = step_params
    for mine, theirs in zip(factor.paths, paths):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-12, atol=1e-15)

    # the state lrcontrol 0.1 saved: the guard's fields inline, the path p itself under "online"
    old_format = {
        **{key: getattr(factor, key) for key in ("scale", "adapted_steps", "skipped", "idle_steps", "restores")},
        **dict.fromkeys(("loss_ema", "ckpt_loss", "ckpt_params", "ckpt_opt", "ckpt_groups")),
        "since_ckpt": 0,
        "online": {"paths": [p.clone() for p in factor.paths], "ratio": factor.ratio, "zscore": factor.zscore},
    }
    factor.load_state_dict(old_format)
    for mine, theirs in zip(factor.paths, paths):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-12, atol=1e-15)
    assert factor.path_scales == [1.0, 1.0]


def test_the_example_in_docs_clara_md_runs():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "clara.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 1, "docs/clara.md lost its example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)
    lrs, observed = namespace["controller"].lrs, namespace["controller"].observables()
    assert all(math.isfinite(lr) and lr > 0 for lr in lrs)
    # the spec is sgd + warmup + clara: clara is the second factor (the optimizer is not one)
    assert observed["1.clara.skipped"] == 0 and math.isfinite(observed["1.clara.ratio"])
