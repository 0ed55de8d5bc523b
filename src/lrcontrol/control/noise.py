"""LR noise: a multiplicative, seeded, log-normal perturbation of the schedule (a stochastic LR).

    m(t) = exp(σ_t · z_t − σ_t² / 2),   σ_t = std · (1 + t)^(−decay),   z_t ~ N(0, 1) clipped to ±4

E[m(t)] = 1 (before the clipping of z, which moves it by less than 1e-4 for σ ≤ 1), so the noise
perturbs the schedule it multiplies without shifting it on average; `decay` > 0 anneals it, as the
annealed gradient noise of Neelakantan et al. 2015 ("Adding gradient noise improves learning for very
deep networks", arXiv:1511.06807) does. Random learning rates as a regulariser and as a way to
avoid tuning: Blier, Wolinski & Ollivier 2019 ("Learning with random learning rates", ECML-PKDD).

z_t is drawn from numpy's counter-based Philox generator keyed by `seed`, at counter t: a pure
function of (seed, t, group), so the factor keeps no state and a resumed run draws exactly the noise
an uninterrupted one would, whatever step it resumes from. `per_group=True` draws one value per
param group (independent), otherwise every group shares the step's draw.
"""

from __future__ import annotations

import math

import numpy as np

from lrcontrol.control.base import Factor
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

Z_CLIP = 4.0


@register_factor
class LRNoise(Factor):
    """Multiplicative log-normal LR noise, seeded and stateless (mean 1; optionally annealed)."""

    name = "lr_noise"
    kind = "schedule"
    params = (
        Param("std", 0.1, "σ: standard deviation of log m at step 0", low=0.0, high=2.0, low_open=True),
        Param("seed", 0, "noise seed (independent of the run's seed)", type="int", low=0),
        Param("decay", 0.0, "anneal σ as (1 + t)^(−decay); 0 keeps it constant", low=0.0, high=2.0),
        Param("per_group", False, "one independent draw per param group", type="bool"),
    )
    example = "lr_noise(std=0.3, seed=1)"
    examples = ("lr_noise(std=0.2, seed=3, decay=0.5, per_group=True)",)

    def _draws(self, t: int, count: int) -> np.ndarray:
        generator = np.random.Generator(np.random.Philox(key=self.config["seed"], counter=t))
        return np.clip(generator.standard_normal(count), -Z_CLIP, Z_CLIP)

    def multiplier(self, t: int) -> float | list[float]:
        sigma = self.config["std"] * (1.0 + t) ** (-self.config["decay"])
        assert self.ctx is not None
        count = self.ctx.num_groups if self.config["per_group"] else 1
        values = [math.exp(sigma * float(z) - 0.5 * sigma * sigma) for z in self._draws(t, count)]
        return values if self.config["per_group"] else values[0]
