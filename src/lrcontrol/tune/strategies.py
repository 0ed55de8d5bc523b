"""The tuners: SMAC3's facades driven through ask-and-tell.

- `smac-mf`: `MultiFidelityFacade` (random-forest BO proposing configurations) with the Hyperband
  intensifier, η = 3 — the "Revisiting Learning Rate Control" study's MF-HPO (SMAC3, Lindauer et al.
  2022; Hyperband, Li et al. 2018). Fidelity = training steps between `min_budget` and the full budget.
- `smac-bo`: `HyperparameterOptimizationFacade`, black-box BO, every trial at the full budget.
- `random`: `RandomFacade`, random search at the full budget.
- `hyperband`: `HyperbandFacade`, Hyperband with random proposals (no model).
- `sh`: successive halving with random proposals (no model).

A prior (πBO, Hvarfner et al. 2022) swaps the acquisition function for SMAC3's
`PriorAcquisitionFunction` (decay β = trials / 10, as SMAC3 recommends) and puts the prior's centre in
the initial design; random proposals (initial design, interleaved random configurations) then draw
from the prior too, since ConfigSpace samples a normal hyperparameter from its normal distribution.

Why SMAC3 and not a hand-written loop: the brackets, the promotion rules, the surrogate and the
acquisition are SMAC3's, so "SMAC-tuned" means what it means in the study. lrcontrol only decides how
a trial is trained (continued from its lower budget) and what its cost is.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

STRATEGIES = ("smac-mf", "smac-bo", "random", "hyperband", "sh")
MULTI_FIDELITY = ("smac-mf", "hyperband", "sh")
MODEL_BASED = ("smac-mf", "smac-bo")
#: what SMAC3 is told for a failed trial before any trial has finished (costs are -accuracy, a loss or a
#: regret: a failure first is taken as far worse than any of them)
CRASH_COST_BEFORE_ANY_RESULT = 1e3


def _ask_tell_only(config: Any, seed: int = 0, budget: float | None = None) -> float:
    raise RuntimeError("lrcontrol drives SMAC3 through ask and tell; the target function is never called")


class SmacDriver:
    """Owns one SMAC3 optimizer for one tune; `ask()` → (configuration, budget or None), `tell(...)`."""

    def __init__(
        self,
        strategy: str,
        configspace: Any,
        trials: int,
        seed: int,
        max_budget: int,
        min_budget: int,
        eta: int,
        prior: bool,
    ) -> None:
        from smac import HyperbandFacade, HyperparameterOptimizationFacade, MultiFidelityFacade, RandomFacade, Scenario
        from smac.acquisition.function import PriorAcquisitionFunction
        from smac.intensifier.successive_halving import SuccessiveHalving

        # SMAC3 writes its run history to disk; lrcontrol keeps its own record in the store, so SMAC's
        # files go to a directory that lives as long as this driver.
        self._directory = tempfile.TemporaryDirectory(prefix="lrcontrol-smac-")
        multi_fidelity = strategy in MULTI_FIDELITY
        scenario = Scenario(
            configspace,
            name="lrcontrol",
            output_directory=self._directory.name,
            deterministic=True,
            n_trials=trials,
            seed=seed,
            min_budget=min_budget if multi_fidelity else None,
            max_budget=max_budget if multi_fidelity else None,
        )
        facade = {
            "smac-mf": MultiFidelityFacade,
            "smac-bo": HyperparameterOptimizationFacade,
            "random": RandomFacade,
            "hyperband": HyperbandFacade,
            "sh": RandomFacade,
        }[strategy]
        kwargs: dict[str, Any] = {}
        if strategy in ("smac-mf", "hyperband"):
            kwargs["intensifier"] = facade.get_intensifier(scenario, eta=eta)
        elif strategy == "sh":
            kwargs["intensifier"] = SuccessiveHalving(scenario, eta=eta, seed=seed)
        else:
            kwargs["intensifier"] = facade.get_intensifier(scenario, max_config_calls=1)
        if prior:
            kwargs["acquisition_function"] = PriorAcquisitionFunction(
                facade.get_acquisition_function(scenario), decay_beta=trials / 10
            )
            kwargs["initial_design"] = facade.get_initial_design(
                scenario, additional_configs=[configspace.get_default_configuration()]
            )
        self.smac = facade(scenario, _ask_tell_only, overwrite=True, logging_level=logging.ERROR, **kwargs)
        self._infos: dict[int, Any] = {}
        self._costs: list[float] = []  # the finished trials' costs, for a failed trial's crash cost

    def ask(self) -> tuple[int, dict[str, Any], float | None]:
        info = self.smac.ask()
        token = len(self._infos)
        self._infos[token] = info
        return token, dict(info.config), info.budget

    def tell(self, token: int, cost: float | None) -> None:
        """`cost` None: the trial failed (diverged or an invalid configuration) — SMAC's crash cost."""
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        info = self._infos.pop(token)
        if cost is None:
            value = TrialValue(cost=self._crash_cost(), status=StatusType.CRASHED)
        else:
            self._costs.append(float(cost))
            value = TrialValue(cost=float(cost), status=StatusType.SUCCESS)
        self.smac.tell(info, value, save=False)

    def _crash_cost(self) -> float:
        """A finite cost worse than every finished trial so far, for a failed one.

        SMAC3's default crash cost is infinite, and its run-history encoder normalises the costs before
        the random forest is fitted, so one infinite cost turns every target into NaN and the tune
        aborts (a diverged trial at a large LR is common when tuning an LR). lrcontrol picks its
        incumbent from its own trial records, where a failed trial has no objective, so this value only
        steers SMAC's model away from the failed region.
        """
        if not self._costs:
            return CRASH_COST_BEFORE_ANY_RESULT
        worst, best = max(self._costs), min(self._costs)
        return worst + max(worst - best, 1.0)

    def close(self) -> None:
        self._directory.cleanup()
