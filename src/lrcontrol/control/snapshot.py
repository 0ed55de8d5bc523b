"""One snapshot of what an optimizer step changes, so that it can be put back bit for bit.

Used by the online rules' runaway guard (`control/guard.py`), the bold driver's rollback
(`control/reactive.py`) and the LR range test (`lrcontrol/lr_range_test.py`, which adds the model's
buffers, gradients and RNG streams around it). A snapshot holds:

- the values of the tracked tensors (the parameters);
- every entry of the optimizer's per-parameter state (`optimizer.state[p]`: moments, step counts …);
- the entries an optimizer keeps in its param groups besides the parameters (D-Adaptation's d, DoG's
  r̄, the betas …), and with `keep_lr=True` the LR too (the controllers leave the LR out: it is theirs).

`take()` copies into buffers it reuses when the state has the same layout (one `torch._foreach_copy_`
instead of fresh allocations each time), `restore()` writes copies back (so a snapshot can be restored
more than once). torch's `Optimizer.state_dict()` is not used for this because it cannot restore the
parameters themselves and always allocates a deep copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch

_ALWAYS_SKIPPED = ("params",)
_CONTROLLER_OWNED = ("params", "lr", "initial_lr")


def _copy_value(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _same_layout(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    """Whether every saved entry is a tensor of the same shape as the live one (buffers can be reused)."""
    return len(old) == len(new) and all(
        a.keys() == b.keys()
        and all(
            isinstance(a[k], torch.Tensor) and isinstance(b[k], torch.Tensor) and a[k].shape == b[k].shape for k in a
        )
        for a, b in zip(old, new)
    )


def unique_params(optimizer: torch.optim.Optimizer, extra: Iterable[torch.Tensor] = ()) -> list[torch.Tensor]:
    """The optimizer's parameters (after `extra`), each once, in order."""
    seen: set[int] = set()
    out: list[torch.Tensor] = []
    for t in [*extra, *(p for g in optimizer.param_groups for p in g["params"])]:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


class Snapshot:
    """Tensors, optimizer state and param-group entries, copied on `take()` and written back on `restore()`.

    tensors: the tensors to save (default: every parameter of the optimizer); the optimizer state of
    exactly these tensors is saved with them. keep_lr: also save and restore the groups' LR.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        tensors: Iterable[torch.Tensor] | None = None,
        *,
        keep_lr: bool = False,
    ) -> None:
        self.optimizer = optimizer
        self.tensors = unique_params(optimizer) if tensors is None else list(tensors)
        self.skipped_keys = _ALWAYS_SKIPPED if keep_lr else _CONTROLLER_OWNED
        self.values: list[torch.Tensor] | None = None
        self.state: list[dict[str, Any]] | None = None
        self.groups: list[dict[str, Any]] | None = None

    @property
    def taken(self) -> bool:
        return self.values is not None

    def _live_state(self) -> list[dict[str, Any]]:
        state = self.optimizer.state
        return [dict(state[p]) if p in state else {} for p in self.tensors]

    def take(self) -> None:
        """Copy the tensors, their optimizer state and the param-group entries (reusing buffers)."""
        with torch.no_grad():
            if self.values is None:
                self.values = [t.detach().clone() for t in self.tensors]
            elif self.tensors:
                torch._foreach_copy_(self.values, self.tensors)
            live = self._live_state()
            if self.state is not None and _same_layout(self.state, live):
                dst = [d[k] for d in self.state for k in d]
                src = [s[k] for s in live for k in s]
                if dst:
                    torch._foreach_copy_(dst, src)
            else:
                self.state = [{k: _copy_value(v) for k, v in s.items()} for s in live]
        self.groups = [
            copy.deepcopy({k: v for k, v in g.items() if k not in self.skipped_keys})
            for g in self.optimizer.param_groups
        ]

    def restore(self) -> None:
        """Write the snapshot back: tensor values, optimizer state (entries added since are dropped), groups."""
        if self.values is None or self.state is None or self.groups is None:
            raise RuntimeError("Snapshot.restore() before take()")
        with torch.no_grad():
            if self.tensors:
                torch._foreach_copy_(self.tensors, self.values)
            state = self.optimizer.state
            for p, saved in zip(self.tensors, self.state):
                if not saved:
                    state.pop(p, None)
                    continue
                live = state[p]
                live.clear()
                live.update({k: _copy_value(v) for k, v in saved.items()})
        for group, saved_group in zip(self.optimizer.param_groups, self.groups):
            for key in [k for k in group if k not in self.skipped_keys and k not in saved_group]:
                del group[key]
            group.update(copy.deepcopy(saved_group))

    # -- exact resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any] | None:
        if self.values is None:
            return None
        return {
            "values": [v.clone() for v in self.values],
            "state": [{k: _copy_value(v) for k, v in s.items()} for s in self.state or []],
            "groups": copy.deepcopy(self.groups),
        }

    def load_state_dict(self, saved: dict[str, Any] | None) -> None:
        if saved is None:
            self.values = self.state = self.groups = None
            return
        if len(saved["values"]) != len(self.tensors):
            raise ValueError(f"this snapshot has {len(saved['values'])} tensors, the optimizer {len(self.tensors)}")
        self.values = [
            v.detach().clone().to(device=t.device, dtype=t.dtype) for v, t in zip(saved["values"], self.tensors)
        ]
        self.state = [{k: _copy_value(v) for k, v in s.items()} for s in saved["state"]]
        self.groups = copy.deepcopy(saved["groups"])
