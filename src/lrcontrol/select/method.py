"""The spec entry of `auto()`: a whole method that chooses its optimizer and LR control per task.

A leaf module like the method modules (it imports only `lrcontrol.registration`), so that the spec
language can name `auto()` without importing the selector, the probes or torch. What `auto()` does
is `lrcontrol.select.auto`'s job; the spec parser only checks that it stands alone
(`Spec.whole`), and the engine resolves it into the chosen member's spec when a run starts.
"""

from __future__ import annotations

from lrcontrol.registration import Entry, register

AUTO = "auto"
#: its canonical spec: what the engine stores as an auto() run's spec, and what the run key recognises
AUTO_SPEC = "auto()"


def _selector_identity(args: dict[str, object]) -> str:
    """What an auto() run's result depends on besides its spec: the selector file that chose its member
    (its content hash; `lrcontrol.select.shipped` is imported only when an auto() run is keyed)."""
    from lrcontrol.select.shipped import identity

    return f"selector:{identity()}"


def _no_factor() -> None:
    """auto() builds nothing by itself: the engine (or `lrcontrol.auto(...)`) resolves it to a member's spec."""
    return None


register(
    Entry(
        name=AUTO,
        kind="method",
        factory=_no_factor,
        params=(),
        summary=(
            "The LR control chosen per task by the shipped selector: probe the task (about 8 % of the run), pick a "
            "portfolio member, train it (docs/auto.md)"
        ),
        example="auto()",
        examples=("auto()",),
        identity=_selector_identity,
    )
)
