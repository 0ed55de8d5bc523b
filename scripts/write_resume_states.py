"""Write a fixture of mid-run controller states for tests/test_controller.py's old-state tests.

Run it with the sources of the lrcontrol version whose states the fixture should hold, e.g. for 0.3.0:

    git worktree add /tmp/lrc-0.3 <commit> && PYTHONPATH=/tmp/lrc-0.3/src python scripts/write_resume_states.py \
        tests/data/states-0.3.0.pt "sgd(lr=0.2) + exponential(gamma=0.8, min_scale=0.05)" …

Each spec trains a small MLP for 12 steps, saves model, optimizer and controller, and records the LRs
and parameters of the 18 steps that follow (the test resumes from the save and must reach them bit for bit).
"""

from __future__ import annotations

import sys

import torch

import lrcontrol

SAVE_AT, END = 12, 30


def batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(t))
    return x, x[:, 0] * 3


def run(spec: str) -> dict:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    opt, ctl = lrcontrol.build(model.parameters(), spec, total_steps=END)
    saved, lrs = None, []
    for t in range(END):
        if t == SAVE_AT:
            saved = {"model": model.state_dict(), "optimizer": opt.state_dict(), "controller": ctl.state_dict()}
            saved = torch.utils._pytree.tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, saved)
        x, y = batch(t)
        loss = ((model(x).squeeze(1) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        if t >= SAVE_AT:
            lrs.append(ctl.lrs)
    return {"saved": saved, "lrs": lrs, "params": [p.detach().clone() for p in model.parameters()]}


if __name__ == "__main__":
    out, specs = sys.argv[1], sys.argv[2:]
    torch.save({spec: run(spec) for spec in specs}, out)
    print(f"lrcontrol {lrcontrol.__version__}: {len(specs)} states → {out}")
