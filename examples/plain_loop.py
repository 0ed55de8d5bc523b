"""A plain PyTorch training loop with lrcontrol: an MLP on scikit-learn's digits.

    python examples/plain_loop.py [--spec "adamw(lr=3e-3) + warmup(0.05) + cosine()"] [--steps 600]

The only lrcontrol lines are `lrcontrol.build(...)`, `controller.step(loss)` and `controller.report(...)`.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import lrcontrol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--spec", default="adamw(lr=3e-3, weight_decay=0.01) + warmup(0.05) + cosine() + plateau(patience=3)"
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=args.seed)
    x_train, x_val = torch.tensor(x_train, dtype=torch.float32), torch.tensor(x_val, dtype=torch.float32)
    y_train, y_val = torch.tensor(y_train), torch.tensor(y_val)

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer, controller = lrcontrol.build(model.parameters(), args.spec, total_steps=args.steps)
    print(f"method: {controller.spec}")

    for step in range(args.steps):
        idx = torch.randint(0, len(x_train), (64,))
        loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss)  # sets the LR for the next step

        if (step + 1) % 50 == 0:
            with torch.no_grad():
                logits = model(x_val)
                val_loss = torch.nn.functional.cross_entropy(logits, y_val).item()
                val_acc = (logits.argmax(1) == y_val).float().mean().item()
            controller.report(val_loss=val_loss)  # reactive rules (plateau) watch val_loss
            print(
                f"step {step + 1:4d}  loss {loss.item():.4f}  val_loss {val_loss:.4f}  "
                f"val_acc {val_acc:.3f}  lr {controller.lrs[0]:.2e}"
            )


if __name__ == "__main__":
    main()
