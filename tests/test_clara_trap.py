"""The dead/chaotic-network detector (control/trap.py) and clara(trap=...)."""

from __future__ import annotations

import math

import torch

import lrcontrol
from lrcontrol.control.trap import TRAP_START_STEPS, TRAP_WINDOW, TrapDetector

CHANCE = math.log(10)
R_MAX = 9.0  # SGD: K/Σμ = 1/μ with μ = 0.111


def _fires(losses, ratios) -> list[int]:
    det = TrapDetector()
    return [t for t, (loss, r) in enumerate(zip(losses, ratios)) if det.update(loss, r, R_MAX)]


def test_a_dead_network_whose_path_looks_like_noise_is_caught():
    # the loss stays at chance and the path reads noise (R ≈ 1): caught once the window is full
    fired = _fires([CHANCE] * 100, [1.0 + 0.05 * (-1) ** t for t in range(100)])
    assert fired and fired[0] == TRAP_START_STEPS + TRAP_WINDOW - 1


def test_a_chaotic_network_with_loss_spikes_is_caught():
    losses = [CHANCE] * 10 + [CHANCE * (1 + 3 * (t % 7 == 0)) for t in range(90)]
    assert _fires(losses, [1.0] * 100)


def test_a_learning_run_is_not_flagged_even_with_a_noise_like_path():
    losses = [CHANCE * math.exp(-t / 50) for t in range(300)]
    assert _fires(losses, [1.0] * 300) == []


def test_a_rescue_from_a_tiny_lr_is_not_flagged():
    # the loss has not moved yet, but the steps line up (R well above 1): CLARA is raising η
    assert _fires([CHANCE] * 200, [4.0] * 200) == []


def test_nonfinite_losses_are_ignored():
    assert _fires([float("nan")] * 100, [1.0] * 100) == []


def _dead_relu_run(spec: str, steps: int = 100):
    """A ReLU MLP whose units are all dead from the start: the loss sits at chance whatever η does."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every hidden unit dead
        model[2].weight.zero_()
    opt, ctl = lrcontrol.build(model.parameters(), spec)
    x, y = torch.randn(64, 8), torch.randint(0, 10, (64,))
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x) + 0.3 * torch.randn(64, 10), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
    return ctl


def test_clara_counts_alarms_and_cut_divides_the_lr():
    torch.manual_seed(0)
    watched = _dead_relu_run("sgd(lr=1.0) + clara(d=0.01, guard=False)")
    assert watched.observables()["0.clara.trap_alarms"] >= 1
    cut = _dead_relu_run("sgd(lr=1.0) + clara(d=0.01, guard=False, trap='cut')")
    assert cut.factors[-1].detector.alarms == watched.factors[-1].detector.alarms
    assert cut.lrs[0] < watched.lrs[0] / 50


def test_the_detector_resumes_bit_for_bit():
    first = _dead_relu_run("sgd(lr=1.0) + clara(d=0.01, guard=False)", steps=15)
    state = first.state_dict()
    second = _dead_relu_run("sgd(lr=1.0) + clara(d=0.01, guard=False)", steps=1)
    second.load_state_dict(state)
    assert vars(second.factors[-1].detector) == vars(first.factors[-1].detector)
