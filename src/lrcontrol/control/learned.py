"""A learned LR policy Ψ: the multiplier is a small function of what a controller observes, with weights
meta-trained across many training runs (`lrcontrol learn train`, docs/learned.md).

Each step t (after the optimizer stepped, with the training loss ℓ_t) the policy reads a feature vector
φ_t and moves the log-multiplier by a bounded amount:

    u_t          = tanh(w · φ_t + b)                                 ∈ (−1, 1)
    log m_{t+1}  = clip(log m_t + δ·u_t, log floor, log ceiling),    m_0 = 1
    δ            = clip(K / T, δ_min, δ_max)                          (T = total_steps)

so over a run of any length the multiplier can move by at most a factor e^K in either direction (the
horizon-scaled step of CLARA's d="auto"). The features, all bounded, all computable in a plain loop:

    progress     p = t / T                                            ∈ [0, 1]
    drop         clip(y_fast − y_0, −6, 0) / 6                         progress made since the start, ∈ [−1, 0]
    rise         clip(y_fast − y_0, 0, 3) / 3                          the loss above its start (blow-up), ∈ [0, 1]
    trend        clip(10·(y_fast − y_slow), −1, 1)                     the recent trend (< 0: improving)
    noise        clip(sqrt(v), 0, 1)                                    spread of y around y_fast (batch noise)
    val_worse    clip((v_last − v_best) / |v_best|, 0, 1)              the monitored validation metric's
                                                                       distance from its best (at `report()`)
    log_scale    clip(log m_t / 10, −2, 2)                             the current multiplier
    lr_level     clip(log10(η₀·m_t / 10⁻³), −3, 3) / 3                  optional: where the LR (group 0's base
                                                                       LR η₀ times m_t) sits against AdamW's
                                                                       default 10⁻³, ∈ [−1, 1]

`lr_level` is the one feature that is not relative to the run's own start: it tells a policy trained
with AdamW whether the LR is decades away from where Adam's LRs usually work — what none of the others
can say, since the loss of a run started far too low looks like that of a converged one. A policy uses it
when it has one more weight (9 numbers, `ALL_FEATURES`); the 8-weight form (`FEATURES`) does not read it.

with y = asinh(ℓ / s), s = max(10⁻⁶·|ℓ_0|, 10⁻¹²): the loss on a log scale over six decades below its
first value ℓ_0 that stays defined for zero and negative losses; y_0 its first finite value;
y_fast, y_slow exponential moving averages (bias-corrected) with spans max(n_min, f·T) of the policy
file, v the moving variance of y − y_fast. A non-finite loss is not fed to the averages and cuts the
multiplier at the full rate (u = −1) whatever the weights say. Evaluations (`report()`) move nothing;
they update `val_worse` for the next steps.

Online statistics that need the optimizer's steps (CLARA's path ratio, a gradient-noise scale) are not
features: they cost a copy or a read of every parameter per step (CLARA's capture is the largest part
of its 1.6–1.75× optimizer-step overhead, docs/performance.md), whereas these features cost a few float
operations per step; the loss's own spread stands in for the gradient noise.

The weights (w, b) and the constants (K, δ_min, δ_max, the spans) are plain JSON: `policy="default"` names
a file shipped in `lrcontrol/control/policies/`, any other value is a path to a JSON file of the same
form; `weights=[w_1, …, w_7, b]` overrides the file's weights (what meta-training evaluates). The state
carries a digest of the weights, and resuming under other weights is refused.

The idea — a controller that maps training statistics to the step size, its parameters learned across
many runs — is that of Daniel, Taylor & Nowozin, "Learning Step Size Controllers for Robust Neural
Network Training" (AAAI 2016: a linear policy on loss and gradient features, trained by relative-entropy
policy search) and Xu et al., "Learning an Adaptive Learning Rate Schedule" (2019: an actor-critic
policy that transfers across data sets); DACBench (Eimer et al., IJCAI 2021) frames LR control as
dynamic algorithm configuration. Here the policy is linear-in-features with a tanh output, like Daniel
et al.'s, and trained by CMA-ES on runs (lrcontrol.select.learn).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from lrcontrol.control.base import Context, Factor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

#: the features, in the order of the weights (the bias comes last)
FEATURES = ("progress", "drop", "rise", "trend", "noise", "val_worse", "log_scale")
#: the features with the optional LR level; the number of weights says which a policy reads
ALL_FEATURES = (*FEATURES, "lr_level")
#: the LR the level is measured against: AdamW's default (the optimizer the policies are trained with)
LEVEL_REFERENCE = 1e-3
#: the policy file's constants and their allowed ranges
CONSTANTS = {
    "rate": (0.1, 100.0),  # K: the largest total move of log m over a run
    "rate_min": (1e-4, 1.0),  # δ_min
    "rate_max": (1e-3, 2.0),  # δ_max
    "fast_span": (0.001, 0.5),  # the fast average's span as a fraction of T …
    "fast_min": (1.0, 1000.0),  # … and at least this many steps
    "slow_span": (0.001, 0.5),
    "slow_min": (1.0, 1000.0),
}
_LOSS_SCALE = 1e-6
_ASINH_FLOOR = 1e-12


def policy_dir() -> Path:
    """The folder of the shipped policies."""
    return Path(str(resources.files("lrcontrol.control") / "policies"))


def shipped_policies() -> list[str]:
    return sorted(p.stem for p in policy_dir().glob("*.json"))


def load_policy(name: str) -> dict[str, Any]:
    """A shipped policy by name, or a JSON file by path; checked (one line naming the problem)."""
    shipped = policy_dir() / f"{name}.json"
    path = shipped if "/" not in name and "\\" not in name and shipped.is_file() else Path(name)
    if not path.is_file():
        known = ", ".join(shipped_policies()) or "none"
        raise LRControlError(f"learned(policy={name!r}): no such shipped policy or file; shipped: {known}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LRControlError(f"learned(policy={name!r}): {path} is not a JSON policy file ({exc})") from None
    # a copy: the caller may keep or change it, the cached one stays as read
    return copy.deepcopy(_parse_policy(name, str(path), text))


@lru_cache(maxsize=16)
def _parse_policy(name: str, path: str, text: str) -> dict[str, Any]:
    """The checked policy, cached by the file's text (a rewritten file is parsed again, whatever its
    timestamp): the run key reads the file for every run of a learned() spec."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LRControlError(f"learned(policy={name!r}): {path} is not a JSON policy file ({exc})") from None
    return check_policy(data, path)


def check_policy(data: Any, where: str) -> dict[str, Any]:
    """The policy's fields, validated: features FEATURES or ALL_FEATURES in order, len(weights) = features + 1,
    constants in range."""
    if not isinstance(data, dict):
        raise LRControlError(f"{where}: a policy is a JSON object, got {type(data).__name__}")
    features = list(data.get("features", []))
    if features not in (list(FEATURES), list(ALL_FEATURES)):
        raise LRControlError(
            f"{where}: the policy's features must be {list(FEATURES)}, or those and 'lr_level'; got {data.get('features')!r}"
        )
    weights = check_weights(data.get("weights"), where)
    if len(weights) != len(features) + 1:
        raise LRControlError(f"{where}: {len(features)} features need {len(features) + 1} weights, got {len(weights)}")
    for key, (low, high) in CONSTANTS.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise LRControlError(f"{where}: {key} must be a number in [{low:g}, {high:g}], got {value!r}")
    if data["rate_min"] > data["rate_max"]:
        raise LRControlError(f"{where}: rate_min {data['rate_min']} is above rate_max {data['rate_max']}")
    return data


def check_weights(weights: Any, where: str) -> list[float]:
    """8 finite numbers (the FEATURES' weights, then the bias) or 9 (with the lr_level feature's)."""
    sizes = (len(FEATURES) + 1, len(ALL_FEATURES) + 1)
    if (
        not isinstance(weights, (list, tuple))
        or len(weights) not in sizes
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
    ):
        raise LRControlError(
            f"{where}: weights must be {sizes[0]} finite numbers (one per feature, then the bias), or {sizes[1]} "
            "with the lr_level feature's"
        )
    return [float(w) for w in weights]


def digest(weights: list[float], policy: dict[str, Any]) -> str:
    """What a resumed state must match: the weights and the constants."""
    payload = json.dumps([weights, [policy[k] for k in CONSTANTS]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def transform(loss: float, scale: float) -> float:
    return math.asinh(loss / scale)


@register_factor
class Learned(Factor):
    """Learned policy Ψ: tanh of a weighted sum of progress, loss level, trend, noise, val metric and the multiplier."""

    name = "learned"
    kind = "online"
    uses_loss = True
    params = (
        Param("policy", "default", "a shipped policy's name or a path to a policy JSON file", type="str"),
        Param(
            "weights",
            None,
            "override the policy's weights: one per feature, then the bias (meta-training sets them)",
            type="floats",
            nullable=True,
        ),
        Param("monitor", "val_loss", "the validation metric the policy reads at report()", type="str"),
        Param(
            "mode",
            "min",
            "whether lower or higher is better for the monitored metric",
            type="str",
            choices=("min", "max"),
        ),
        Param("floor", 1e-8, "lowest multiplier (a fraction of the base LR)", low=0.0, high=1.0, low_open=True),
        Param("ceiling", 1e8, "highest multiplier (a multiple of the base LR)", low=1.0),
    )
    example = "learned()"
    examples = (
        "learned(weights=[0.5, -1.0, -3.0, -2.0, 0.0, -2.0, -0.5, 0.3], monitor='val_acc', mode='max')",
        "learned(weights=[-3.0, 0.5, -4.0, 1.0, -1.0, -3.0, 0.2, 1.0], floor=0.01, ceiling=100.0)",
    )
    transient: ClassVar[tuple[str, ...]] = (
        "horizon", "_policy", "_weights", "_rate", "_beta_fast", "_beta_slow", "_base_lr",
    )  # fmt: skip

    @classmethod
    def content_identity(cls, args: dict[str, Any]) -> str:
        """What a run's result depends on besides its spec (`Entry.identity`, part of the run key): the
        digest of the policy file's constants and of the weights the run uses — the file's, or the spec's
        `weights=[…]` — the same digest the state carries. A retrained `default.json` or an edited
        `policy="file.json"` gives new run keys; an unchanged file, the same."""
        policy = load_policy(args["policy"])
        given = args.get("weights")
        weights = check_weights(list(given) if given is not None else policy["weights"], "learned(weights=…)")
        return f"policy:{digest(weights, policy)}"

    def check_config(self) -> None:
        self._policy = load_policy(self.config["policy"])
        given = self.config["weights"]
        self._weights = check_weights(
            list(given) if given is not None else self._policy["weights"], "learned(weights=…)"
        )

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        if ctx.total_steps is None:
            raise LRControlError("learned() reads the progress t/T: pass total_steps (the planned optimizer steps)")
        self._derive(ctx.total_steps)
        self._base_lr = max(float(ctx.base_lrs[0]), 1e-300)  # the LR m_t multiplies (lr_level)
        self.policy_digest = digest(self._weights, self._policy)
        self.log_scale = 0.0
        self.loss_scale: float | None = None  # s of the transform, from the first finite loss
        self.y0: float | None = None
        self.seen = 0  # finite losses fed to the averages
        self.fast = 0.0  # raw (not bias-corrected) moving averages of y
        self.slow = 0.0
        self.var = 0.0  # moving variance of y − ŷ_fast
        self.val_best = math.inf
        self.val_last = math.inf
        self.evaluations = 0
        self.nonfinite = 0
        self.last_u = 0.0

    def _derive(self, total_steps: int) -> None:
        """What follows the horizon (transient: a resumed controller's total_steps wins, as for schedules)."""
        p = self._policy
        self.horizon = int(total_steps)
        self._rate = min(max(p["rate"] / self.horizon, p["rate_min"]), p["rate_max"])
        self._beta_fast = 1.0 - 1.0 / max(p["fast_min"], p["fast_span"] * self.horizon)
        self._beta_slow = 1.0 - 1.0 / max(p["slow_min"], p["slow_span"] * self.horizon)

    def after_load(self) -> None:
        if self.policy_digest != digest(self._weights, self._policy):
            raise LRControlError(
                "learned: this state was saved under other policy weights; build the spec (policy, weights) it was saved from"
            )

    # -- the multiplier --------------------------------------------------------------------------
    def multiplier(self, t: int) -> float:
        return math.exp(self.log_scale)

    def features(self, t: int) -> list[float]:
        """φ_t in FEATURES order, then lr_level for a policy with its weight (docstring)."""
        progress = min(max(t / self.horizon, 0.0), 1.0)
        if self.seen:
            fast = self.fast / (1.0 - self._beta_fast**self.seen)
            slow = self.slow / (1.0 - self._beta_slow**self.seen)
            level = fast - self.y0
            drop, rise = min(max(level, -6.0), 0.0) / 6.0, min(max(level, 0.0), 3.0) / 3.0
            trend = min(max(10.0 * (fast - slow), -1.0), 1.0)
            noise = min(math.sqrt(max(self.var, 0.0)), 1.0)
        else:
            drop = rise = trend = noise = 0.0
        if not self.evaluations:
            val_worse = 0.0
        elif not math.isfinite(self.val_last):
            val_worse = 1.0  # a non-finite metric reads as the worst
        else:
            val_worse = min(max((self.val_last - self.val_best) / max(abs(self.val_best), 1e-12), 0.0), 1.0)
        log_scale = min(max(self.log_scale / 10.0, -2.0), 2.0)
        phi = [progress, drop, rise, trend, noise, val_worse, log_scale]
        if len(self._weights) == len(ALL_FEATURES) + 1:
            decades = math.log10(self._base_lr / LEVEL_REFERENCE) + self.log_scale / math.log(10.0)
            phi.append(min(max(decades, -3.0), 3.0) / 3.0)
        return phi

    def on_step(self, t: int, loss: float | None) -> None:
        if loss is not None and not math.isfinite(loss):
            self.nonfinite += 1
            self._move(-1.0)  # a non-finite loss: cut at the full rate, whatever the weights say
            return
        if loss is not None:
            self._observe(loss)
        z = sum(w * x for w, x in zip(self._weights, self.features(t + 1))) + self._weights[-1]
        self._move(math.tanh(z))

    def _observe(self, loss: float) -> None:
        if self.loss_scale is None:
            self.loss_scale = max(_LOSS_SCALE * abs(loss), _ASINH_FLOOR)
        y = transform(loss, self.loss_scale)
        if self.y0 is None:
            self.y0 = y
        self.seen += 1
        bf, bs = self._beta_fast, self._beta_slow
        previous = self.fast / (1.0 - bf ** (self.seen - 1)) if self.seen > 1 else y
        self.fast = bf * self.fast + (1.0 - bf) * y
        self.slow = bs * self.slow + (1.0 - bs) * y
        self.var = bf * self.var + (1.0 - bf) * (y - previous) ** 2

    def _move(self, u: float) -> None:
        self.last_u = u
        low, high = math.log(self.config["floor"]), math.log(self.config["ceiling"])
        self.log_scale = min(max(self.log_scale + self._rate * u, low), high)

    def on_evaluation(self, metrics: dict[str, float]) -> None:
        if self.config["monitor"] not in metrics:
            return
        value = float(metrics[self.config["monitor"]])
        value = value if self.config["mode"] == "min" else -value
        if not math.isfinite(value):
            value = math.inf  # the worst value: val_worse reads 1
        self.evaluations += 1
        self.val_last = value
        self.val_best = min(self.val_best, value)

    def observables(self) -> dict[str, Any]:
        return {"scale": math.exp(self.log_scale), "u": self.last_u, "nonfinite": self.nonfinite}
