"""The Hugging Face Trainer with an lrcontrol controller as its scheduler and LRControlTrainerCallback:
a tiny GPT-2 built from its config (nothing downloaded), CPU, a few steps each."""

from __future__ import annotations

import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

import lrcontrol  # noqa: E402
from lrcontrol.integrations.hf import LRControlTrainerCallback  # noqa: E402
from lrcontrol.optim.modes import eval_mode, is_train_mode  # noqa: E402

VOCAB, LENGTH = 32, 12


def _dataset(seed: int, n: int, random: bool = False) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        if random:
            ids = torch.randint(0, VOCAB, (LENGTH,), generator=g)
        else:  # a counting sequence from a random start: learnable in a few steps
            ids = (torch.arange(LENGTH) + torch.randint(0, VOCAB, (1,), generator=g)) % VOCAB
        rows.append({"input_ids": ids, "labels": ids.clone()})
    return rows


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config)


class Recorder:
    """Any logger with log_metrics(metrics, step)."""

    def __init__(self):
        self.rows: list[tuple[int, dict]] = []

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def series(self, key: str) -> dict[int, float]:
        return {step: m[key] for step, m in self.rows if key in m}


def _trainer(tmp_path, model, optimizer, controller, max_steps, callbacks=(), random=False, **kwargs):
    args = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    args.update(kwargs)
    return transformers.Trainer(
        model=model,
        args=transformers.TrainingArguments(**args),
        train_dataset=_dataset(0, 32, random),
        eval_dataset=_dataset(1, 8, random),
        optimizers=(optimizer, controller),
        callbacks=list(callbacks),
    )


def test_plateau_cuts_on_eval_loss_with_the_callback(tmp_path):
    model = _model()
    optimizer, controller = lrcontrol.build(
        model.parameters(),
        "adamw(lr=0.05) + plateau(patience=0, gamma=0.5) + bold_driver(monitor='loss')",
        total_steps=16,
    )
    trainer = _trainer(
        tmp_path,
        model,
        optimizer,
        controller,
        16,
        [LRControlTrainerCallback()],
        random=True,
        eval_strategy="steps",
        eval_steps=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrcontrol.LRControlWarning)  # a correct loop never warns
        trainer.train()
    evals = [row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row]
    plateau = controller.factors[0]
    assert plateau.evaluations == len(evals) == 8
    _, ref = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "sgd(lr=0.05) + plateau(patience=0, gamma=0.5)")
    for v in evals:
        ref.report(val_loss=v)
    assert plateau.cuts == ref.factors[0].cuts >= 1
    assert controller.t == 16 and controller.skipped_steps == 0
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert controller.factors[1].evaluations == len(losses) == 16  # each logged training loss reached the rule


def test_the_logged_lr_of_prodigy_is_d_times_lr(tmp_path):
    model = _model()
    optimizer, controller = lrcontrol.build(model.parameters(), "prodigy(lr=1.0) + cosine()", total_steps=8)
    logger = Recorder()
    _trainer(tmp_path, model, optimizer, controller, 8, [LRControlTrainerCallback(logger=logger)]).train()
    group = optimizer.param_groups[0]
    effective = logger.series("lrcontrol/effective_lr/group0")
    assert sorted(effective)[-1] == 8
    assert effective[8] == pytest.approx(group["d"] * group["lr"], rel=1e-12)
    assert group["d"] > 1.5 * group["d0"]


def test_schedule_free_checkpoints_hold_x(tmp_path):
    model = _model()
    optimizer, controller = lrcontrol.build(model.parameters(), "sf_adamw(lr=0.01)", total_steps=4)
    trainer = _trainer(
        tmp_path, model, optimizer, controller, 4, [LRControlTrainerCallback()], save_strategy="steps", save_steps=4
    )
    trainer.train()
    saved = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out" / "checkpoint-4")
    optimizer.train()  # whatever mode training ended in: compare with both points explicitly
    with eval_mode(optimizer):
        at_x = {k: v.clone() for k, v in model.state_dict().items()}
    at_y = model.state_dict()
    name = "transformer.h.0.mlp.c_fc.weight"
    assert torch.allclose(saved.state_dict()[name], at_x[name], atol=1e-7)
    assert not torch.allclose(at_x[name], at_y[name], atol=1e-5)
    # The Trainer evaluates at x too: it switches the optimizer to eval mode itself, so during (and after)
    # evaluate() the model holds x.
    trainer.evaluate()
    assert is_train_mode(optimizer) is False
    assert torch.allclose(model.state_dict()[name], at_x[name], atol=1e-7)


def test_resume_from_a_checkpoint_continues_the_lr_exactly(tmp_path):
    spec = "adamw(lr=0.01) + warmup(3) + cosine()"
    model = _model()
    optimizer, controller = lrcontrol.build(model.parameters(), spec, total_steps=10)
    logger = Recorder()
    _trainer(
        tmp_path,
        model,
        optimizer,
        controller,
        10,
        [LRControlTrainerCallback(logger=logger)],
        save_strategy="steps",
        save_steps=5,
    ).train()
    full = logger.series("lrcontrol/lr/group0")

    model = _model()
    optimizer, controller = lrcontrol.build(model.parameters(), spec, total_steps=10)
    logger = Recorder()
    trainer = _trainer(
        tmp_path, model, optimizer, controller, 10, [LRControlTrainerCallback(logger=logger)], save_strategy="no"
    )
    trainer.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-5"))
    resumed = logger.series("lrcontrol/lr/group0")
    assert sorted(resumed) == list(range(6, 11))
    assert all(resumed[s] == full[s] for s in resumed)
    assert controller.t == 10
