"""Lightning takes an lrcontrol controller as it is, and LRControlCallback connects it to validation,
Schedule-Free's modes, logging and checkpoints. Tiny models on fixed data, CPU, a few steps each."""

from __future__ import annotations

import warnings

import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")

import lrcontrol  # noqa: E402
from lrcontrol.integrations.lightning import LRControlCallback  # noqa: E402
from lrcontrol.optim.modes import eval_mode  # noqa: E402

BATCHES_PER_EPOCH = 8


def _data(seed: int, n: int = 64, random_labels: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g) if random_labels else (x[:, :2].sum(1) > 0).long()
    return torch.utils.data.TensorDataset(x, y)


class Recorder(pl.loggers.Logger):
    """A logger that keeps what it is sent (Lightning's Logger interface, in memory)."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, dict]] = []

    @property
    def name(self):
        return "recorder"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def series(self, key: str) -> dict[int, float]:
        return {step: m[key] for step, m in self.rows if key in m}


class Module(pl.LightningModule):
    def __init__(self, spec: str, total_steps: int, as_tuple: bool = False, random_labels: bool = False, **options):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        self.spec, self.total_steps, self.as_tuple, self.options = spec, total_steps, as_tuple, options
        self.random_labels = random_labels
        self.val_losses: list[float] = []
        self.controller = None

    def training_step(self, batch, idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("val_loss", loss)

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.val_losses.append(float(self.trainer.callback_metrics["val_loss"]))

    def configure_optimizers(self):
        optimizer, self.controller = lrcontrol.build(
            self.parameters(), self.spec, total_steps=self.total_steps, **self.options
        )
        if self.as_tuple:
            return [optimizer], [self.controller]
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.controller, "interval": "step"}}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_data(0, random_labels=self.random_labels), batch_size=8)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(_data(1, 32, random_labels=self.random_labels), batch_size=32)


def _trainer(tmp_path, max_steps: int, callbacks=(), loggers=False, **kwargs) -> pl.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=loggers,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        deterministic=True,
        **kwargs,
    )


def _schedule_lrs(spec: str, total_steps: int, steps: int) -> list[float]:
    """The LRs the same spec gives in a plain loop, step by step (the reference)."""
    opt, ctl = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], spec, total_steps=total_steps)
    out = []
    for _ in range(steps):
        ctl.step()
        out.append(ctl.lrs[0])
    return out


@pytest.mark.parametrize("as_tuple", [False, True], ids=["dict", "tuple"])
def test_lightning_takes_the_controller_without_an_override(tmp_path, as_tuple):
    spec = "sgd(lr=0.1) + warmup(3) + cosine()"
    module = Module(spec, total_steps=12, as_tuple=as_tuple)
    trainer = _trainer(tmp_path, 12, limit_val_batches=0)
    trainer.fit(module)
    c = module.controller
    if as_tuple:  # Lightning's default interval is the epoch: one step per epoch (12 steps = 1.5 epochs)
        assert c.t == 1
        assert c.lrs[0] == _schedule_lrs(spec, 12, 1)[-1]
    else:
        assert c.t == 12
        assert c.lrs[0] == _schedule_lrs(spec, 12, 12)[-1]
        assert c.skipped_steps == 0


def test_a_plateau_rule_without_the_callback_warns_once_naming_the_fix(tmp_path):
    module = Module("sgd(lr=0.1) + plateau(patience=0)", total_steps=24, warn_unevaluated_after=10)
    with pytest.warns(lrcontrol.LRControlWarning, match="LRControlCallback") as record:
        _trainer(tmp_path, 24, val_check_interval=4).fit(module)
    assert len([w for w in record if issubclass(w.category, lrcontrol.LRControlWarning)]) == 1
    assert module.controller.factors[0].evaluations == 0


def test_plateau_cuts_on_val_loss_with_the_callback(tmp_path):
    spec = "sgd(lr=0.5) + plateau(patience=0, gamma=0.5)"
    module = Module(spec, total_steps=32, random_labels=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrcontrol.LRControlWarning)  # a correct loop never warns
        _trainer(tmp_path, 32, callbacks=[LRControlCallback()], val_check_interval=4).fit(module)
    plateau = module.controller.factors[0]
    assert plateau.evaluations == len(module.val_losses) == 8
    # The same val losses reported in a plain loop give the same cuts.
    _, ref = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], spec, total_steps=32)
    for v in module.val_losses:
        ref.report(val_loss=v)
    assert plateau.cuts == ref.factors[0].cuts >= 1
    assert module.controller.lrs == [0.5 * plateau.scale]


def test_schedule_free_validates_and_checkpoints_at_x(tmp_path):
    module = Module("sf_adamw(lr=0.01)", total_steps=BATCHES_PER_EPOCH)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_train_steps=4)
    trainer = _trainer(tmp_path, BATCHES_PER_EPOCH, callbacks=[LRControlCallback(), ckpt], enable_checkpointing=True)
    trainer.fit(module)
    optimizer = module.controller.optimizer
    x, y = _data(1, 32).tensors
    with torch.no_grad():
        loss_y = float(torch.nn.functional.cross_entropy(module.net(x), y))
        with eval_mode(optimizer):
            loss_x = float(torch.nn.functional.cross_entropy(module.net(x), y))
            at_x = {k: v.clone() for k, v in module.state_dict().items()}
    assert module.val_losses[-1] == pytest.approx(loss_x, rel=1e-6)
    assert abs(loss_x - loss_y) > 1e-4  # the two points differ, so the check above can fail
    # The end-of-training checkpoint holds x (and loads without running code).
    saved = torch.load(next((tmp_path / "ckpt").glob("*step=8.ckpt")), weights_only=True)
    for name, value in saved["state_dict"].items():
        assert torch.allclose(value, at_x[name], atol=1e-6), name
    assert saved["optimizer_states"][0]["param_groups"][0]["train_mode"] is False


def test_without_the_callback_schedule_free_validates_at_y(tmp_path):
    module = Module("sf_adamw(lr=0.01)", total_steps=BATCHES_PER_EPOCH)
    _trainer(tmp_path, BATCHES_PER_EPOCH).fit(module)
    x, y = _data(1, 32).tensors
    with torch.no_grad():
        loss_y = float(torch.nn.functional.cross_entropy(module.net(x), y))
    assert module.val_losses[-1] == pytest.approx(loss_y, rel=1e-6)


def test_the_logged_lr_of_prodigy_is_d_times_lr(tmp_path):
    logger = Recorder()
    module = Module("prodigy(lr=1.0) + cosine()", total_steps=12)
    _trainer(tmp_path, 12, callbacks=[LRControlCallback()], loggers=[logger], log_every_n_steps=1).fit(module)
    group = module.controller.optimizer.param_groups[0]
    effective = logger.series("lrcontrol/effective_lr/group0")
    lr = logger.series("lrcontrol/lr/group0")
    assert sorted(effective) == list(range(1, 13))
    assert effective[12] == pytest.approx(group["d"] * group["lr"], rel=1e-12)
    assert lr[12] == group["lr"]
    assert group["d"] > 1.5 * group["d0"]  # d moved, so d·lr is neither the LR nor the LR times a constant
    assert effective[12] < lr[12] / 100


def test_resume_from_a_mid_epoch_checkpoint_continues_the_lr_exactly(tmp_path):
    spec = "sgd(lr=0.1, momentum=0.9) + warmup(3) + cosine()"
    total = 2 * BATCHES_PER_EPOCH
    logger = Recorder()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1)
    trainer = _trainer(
        tmp_path,
        total,
        callbacks=[LRControlCallback(), ckpt],
        loggers=[logger],
        log_every_n_steps=1,
        enable_checkpointing=True,
        limit_val_batches=0,
    )
    trainer.fit(Module(spec, total_steps=total))
    full = logger.series("lrcontrol/lr/group0")
    path = next((tmp_path / "ckpt").glob("*step=5.ckpt"))  # 5 of 8 batches: mid-epoch

    resumed_logger = Recorder()
    module = Module(spec, total_steps=total)
    trainer = _trainer(
        tmp_path,
        total,
        callbacks=[LRControlCallback()],
        loggers=[resumed_logger],
        log_every_n_steps=1,
        limit_val_batches=0,
    )
    trainer.fit(module, ckpt_path=path)
    resumed = resumed_logger.series("lrcontrol/lr/group0")
    assert sorted(resumed) == list(range(6, total + 1))
    assert all(resumed[s] == full[s] for s in resumed)
    assert module.controller.t == total


def test_a_rule_watching_the_training_loss_receives_it(tmp_path):
    module = Module("sgd(lr=0.1) + bold_driver(monitor='loss', every=2)", total_steps=8)
    _trainer(tmp_path, 8, callbacks=[LRControlCallback()], limit_val_batches=0).fit(module)
    assert module.controller.factors[0].evaluations == 4  # one per window of 2 training losses


def test_the_callback_warns_when_lightning_steps_the_controller_per_epoch(tmp_path):
    module = Module("sgd(lr=0.1) + cosine()", total_steps=8, as_tuple=True)  # interval: Lightning's "epoch"
    with pytest.warns(lrcontrol.LRControlWarning, match="'interval': 'step'"):
        _trainer(tmp_path, 8, callbacks=[LRControlCallback()], limit_val_batches=0).fit(module)
