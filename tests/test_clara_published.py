"""clara_published: the authors' SGD+CLARA and Adam+CLARA, re-derived here from the paper's description.

The reference below is written from the paper (Atamna et al. 2025, §3, Algorithms 1–2), not from the
released code: per tensor k the step direction a_k (SGD: the gradient; Adam: m̂/(√v̂ + ε)), the
update θ_k ← θ_k − η·a_k (plain) or θ_k − η·a_k/‖a_k‖ (unit step), the path
p_k ← (1 − c)·p_k + c·a_k/‖a_k‖, and after the step η ← η·exp(d·(Σ_k‖p_k‖²/(K·μ) − 1)) with one μ for
the whole model: c/(2 − c) for SGD, μ(N) of N = Σ_k N_k parameters for Adam. Everything in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lrcontrol
from lrcontrol.control.clara import monte_carlo_reference, published_sigma

C = 0.2
STEPS = 150
# a noisy quadratic with four tensors, 62 parameters (one of the sizes in the authors' table)
QUAD_SHAPES = [(5, 6), (6,), (4, 5), (6,)]


def _quadratic_problem():
    gen = torch.Generator().manual_seed(3)
    curv = [torch.rand(s, generator=gen, dtype=torch.float64) * 2.0 + 0.1 for s in QUAD_SHAPES]
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in QUAD_SHAPES]
    noise = [[0.3 * torch.randn(s, generator=gen, dtype=torch.float64) for s in QUAD_SHAPES] for _ in range(STEPS)]

    def grads(theta, t):
        return [h * x + e for h, x, e in zip(curv, theta, noise[t])]

    return start, grads


def _digits_problem():
    """Logistic regression on scikit-learn's digits (64·10 + 10 = 650 parameters), fixed batches of 64."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor((x - x.mean(0)) / (x.std(0) + 1e-8), dtype=torch.float64)
    y = torch.as_tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
    start = [torch.zeros(10, 64, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)]

    def grads(theta, t):
        idx = order[(t * 64) % (len(x) - 64) :][:64]
        w, b = (v.detach().clone().requires_grad_(True) for v in theta)
        loss = torch.nn.functional.cross_entropy(x[idx] @ w.T + b, y[idx])
        return list(torch.autograd.grad(loss, [w, b]))

    return start, grads


PROBLEMS = {"quadratic": _quadratic_problem, "digits": _digits_problem}


def reference_lr_path(problem, optimizer, variant, lr, d, mu):
    """The paper's rule written out: returns η after each of STEPS steps."""
    start, grads = PROBLEMS[problem]()
    theta = [t.clone() for t in start]
    paths = [torch.zeros_like(t) for t in theta]
    m = [torch.zeros_like(t) for t in theta]
    v = [torch.zeros_like(t) for t in theta]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    eta, out = lr, []
    for t in range(STEPS):
        g = grads(theta, t)
        if optimizer == "sgd":
            a = g
        else:
            m = [beta1 * mk + (1 - beta1) * gk for mk, gk in zip(m, g)]
            v = [beta2 * vk + (1 - beta2) * gk * gk for vk, gk in zip(v, g)]
            a = [(mk / (1 - beta1 ** (t + 1))) / ((vk / (1 - beta2 ** (t + 1))).sqrt() + eps) for mk, vk in zip(m, v)]
        unit = [ak / ak.norm() for ak in a]
        theta = [x - eta * (u if variant == "unit" else ak) for x, ak, u in zip(theta, a, unit)]
        paths = [(1 - C) * p + C * u for p, u in zip(paths, unit)]
        ratio = sum(float((p * p).sum()) for p in paths) / (len(paths) * mu)
        eta *= math.exp(d * (ratio - 1.0))
        out.append(eta)
    return np.array(out)


def controller_lr_path(problem, optimizer, variant, lr, d):
    start, grads = PROBLEMS[problem]()
    params = [torch.nn.Parameter(t.clone()) for t in start]
    d_arg = f"'{d}'" if isinstance(d, str) else f"{d!r}"
    opt, ctl = lrcontrol.build(params, f"{optimizer}(lr={lr!r}) + clara_published(variant='{variant}', d={d_arg})")
    out = []
    for t in range(STEPS):
        for p, g in zip(params, grads([p.detach() for p in params], t)):
            p.grad = g
        opt.step()
        ctl.step(1.0)
        out.append(ctl.lrs[0])
    return np.array(out), ctl.factors[-1]


def _mu(optimizer, problem):
    if optimizer == "sgd":
        return C / (2 - C)
    n = sum(t.numel() for t in PROBLEMS[problem]()[0])
    probe = torch.optim.Adam([torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))])
    return monte_carlo_reference(probe, 0, [n], C)[n][0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("variant", ["plain", "unit"])
@pytest.mark.parametrize("problem", ["quadratic", "digits"])
def test_published_mode_reproduces_the_papers_lr_path_in_float64(problem, variant, optimizer):
    for lr in (1e-4, 1e-2, 1.0):
        for d in (1e-3, 0.1):
            got, clara = controller_lr_path(problem, optimizer, variant, lr, d)
            # one μ(N) for every tensor, N the total count: R = Σ‖p‖²/(K·μ(N)); it is the μ of one tensor
            # of N elements (to Monte-Carlo precision: the estimate shares its random stream with the
            # other sizes simulated in the same run)
            mu = clara.mu[0]
            assert clara.mu == [mu] * len(clara.mu)
            assert mu == pytest.approx(_mu(optimizer, problem), rel=0.01)
            want = reference_lr_path(problem, optimizer, variant, lr, d, mu)
            assert np.all(np.isfinite(want))
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=f"lr={lr} d={d}")


def test_published_adam_mu_agrees_with_the_authors_table():
    # the authors list Monte-Carlo values for a few model sizes; ours is computed for any N
    for n, theirs in ((62, 0.6853), (650, 0.6827), (235146, 0.6825)):
        probe = torch.optim.Adam([torch.nn.Parameter(torch.zeros(n))])
        assert monte_carlo_reference(probe, 0, [n], C)[n][0] == pytest.approx(theirs, rel=0.01)


def test_published_defaults_unit_step_two_sigma_and_no_guard():
    params = [torch.nn.Parameter(torch.zeros(s)) for s in QUAD_SHAPES]
    opt, ctl = lrcontrol.build(params, "sgd(lr=0.1) + clara_published()")
    clara = ctl.factors[-1]
    assert clara.config["variant"] == "unit" and clara.config["guard"] is False
    # the authors' default damping for SGD: 2·√2·μ(1 − c)/√((1 + (1 − c)²)·N), N = 62
    mu = C / (2 - C)
    assert clara.damping == pytest.approx(2 * math.sqrt(2) * mu * (1 - C) / math.sqrt((1 + (1 - C) ** 2) * 62))
    assert published_sigma(opt, 62, C) == pytest.approx(clara.damping / 2)
    # the default clara keeps its own reference, plain step and guard
    _, ctl2 = lrcontrol.build(params, "sgd(lr=0.1) + clara()")
    assert ctl2.factors[-1].config["variant"] == "plain" and ctl2.factors[-1].config["guard"] is True


def test_the_reference_of_a_run_does_not_depend_on_runs_before_it_at_another_lr():
    """μ from the Monte-Carlo reference is cached per process; an earlier attach at another η must not
    hand its (float32-rounded) estimate to a later one: each gets the bits it gets in a fresh process."""
    from lrcontrol.control import clara_reference

    def mu(lr: float) -> tuple[float, float]:
        opt = torch.optim.Adam([torch.zeros(42, requires_grad=True)], lr=lr)
        return monte_carlo_reference(opt, 0, [39, 3, 42], 0.2)[42]

    clara_reference._CACHE.clear()
    fresh = mu(1e-5)
    clara_reference._CACHE.clear()
    mu(1e-6)  # an earlier run of the same optimizer class and hyperparameters, at another η
    assert mu(1e-5) == fresh
    assert mu(1e-6) != fresh  # the rounding differs between the two η (what made the cache matter)
