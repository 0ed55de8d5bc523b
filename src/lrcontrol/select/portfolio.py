"""The portfolio: LR controls that each cost one run and need no tuning, one per paradigm.

A selector (`lrcontrol.select.selectors`) picks one of these per task; the meta-dataset
(`lrcontrol.select.metadata`) runs every member on every instance. Each member is a spec at its
defaults — the LR a user would try first, or none at all — so that choosing a member is the whole
decision. Why each is in (the complementarity measured on the meta-dataset is in docs/selection-metadata.md):
"""

from __future__ import annotations

from dataclasses import dataclass

from lrcontrol.errors import LRControlError


@dataclass(frozen=True)
class Member:
    """A portfolio member: its short name, its spec, and why it is in."""

    name: str
    spec: str
    reason: str


#: the LR range test inside a member: a short sweep (its steps are the member's extra cost)
FINDER = "lr_from_finder(steps=50)"

# fmt: off
MEMBERS: tuple[Member, ...] = (
    Member("adamw", "adamw(lr=0.001)", "the default everyone starts from: AdamW at its default LR, constant"),
    Member("adamw-cosine", "adamw(lr=0.001) + warmup() + cosine()", "the standard fixed schedule: AdamW's default LR with 5 % warmup and cosine decay to 0"),
    Member("sgdm-finder-cosine", f"sgd(lr=0.01, momentum=0.9) + {FINDER} + cosine()", "SGD with momentum, its LR from the range test, cosine decay: wins where Adam generalises worse"),
    Member("adamw-finder-cosine", f"adamw(lr=0.001) + {FINDER} + cosine()", "AdamW with the LR range test's LR and cosine: for tasks whose good LR is far from 1e-3 (LIBSVM scaling)"),
    Member("sf_adamw", "sf_adamw(lr=0.0025)", "Schedule-Free AdamW at its defaults: no schedule, iterate averaging"),
    Member("prodigy", "prodigy(lr=1.0)", "Prodigy: estimates the step size itself (the 'Revisiting' study's best on vision)"),
    Member("dadapt_adam", "dadapt_adam(lr=1.0)", "D-Adaptation Adam: the step size estimated online, more conservative than Prodigy"),
    Member("dowg", "dowg(lr=1.0)", "DoWG: parameter-free SGD from distance over weighted gradient norms (no Adam scaling)"),
    Member("cocob", "cocob(lr=1.0)", "COCOB-Backprop: per-coordinate coin betting, no LR at all"),
    Member("adam-clara-auto", 'adam(lr=0.001) + clara(d="auto", guard=True)', "CLARA adapting Adam's LR online from the path of normalised steps, damping without tuning"),
    Member("adam-clara-0.01", "adam(lr=0.01) + clara(guard=True)", "Adam at 1e-2 with CLARA's default damping: near-best on the quick suite, the single best to beat"),
    Member("adamw-plateau", "adamw(lr=0.001) + plateau(patience=2, gamma=0.3)", "a reactive rule: AdamW's default LR cut by 0.3 after 2 evaluations without a better validation loss"),
    Member("adamw-learned", "adamw(lr=0.001) + learned()", "AdamW's default LR steered by the meta-learned policy Ψ (docs/learned.md): the spec its held-out evaluation judges; it trains tasks whose good LR is within a few decades of 1e-3 with no finder run"),
)
# fmt: on

PORTFOLIO: dict[str, str] = {m.name: m.spec for m in MEMBERS}
REASONS: dict[str, str] = {m.name: m.reason for m in MEMBERS}


def member_spec(name: str) -> str:
    """The spec of the member called `name`, or an error naming the members."""
    if name not in PORTFOLIO:
        import difflib

        close = difflib.get_close_matches(name, list(PORTFOLIO), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LRControlError(f"unknown portfolio member {name!r}{hint}; the members: {', '.join(PORTFOLIO)}")
    return PORTFOLIO[name]


def check_portfolio() -> None:
    """Every member's spec parses and is canonical (what the meta-dataset stores)."""
    from lrcontrol.spec import parse

    for member in MEMBERS:
        canonical = str(parse(member.spec))
        if canonical != member.spec:
            raise LRControlError(f"member {member.name}: write its spec canonically as {canonical!r}")
