"""One-switch resume: a run killed mid-way and resumed reaches the uninterrupted run's weights bit
for bit (model, Adam moments, scheduler, EMA, step, RNG, data stream); checkpoints are written
atomically; ``resume=auto`` finds the right file."""

from __future__ import annotations

import csv
import os
import signal
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset

from helpers import compose_config, cpu_trainer, run_module
from medsr.data.degrade import eval_batch, train_batch
from medsr.errors import ConfigError
from medsr.files import atomic_torch_save
from medsr.models import build_model
from medsr.training import SRModule
from medsr.training.callbacks import AtomicCheckpointIO, EMAWeights, ResumeState
from medsr.training.resume import resume_checkpoint

TESTS = Path(__file__).parent
# Lightning's notes on what these tests do on purpose (resume into another folder, sized streams).
pytestmark = [
    pytest.mark.filterwarnings("ignore:The dirpath has changed"),
    pytest.mark.filterwarnings("ignore:Your `IterableDataset` has `__len__` defined"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)"),
]


class KillAt(pl.Callback):
    """Entry-point runs only (``+callbacks.kill._target_=test_workflow_resume.KillAt``): SIGKILL."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


# -- the mechanism, on a stream seeded per epoch from the torch RNG (as PatchDataset) ------------
class Stream(IterableDataset):
    """Random uint8 HR batches; every epoch starts from a seed drawn from torch's global RNG, as
    PatchDataset in the main process and fresh DataLoader workers do."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __iter__(self):
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        for _ in range(self.length):
            yield {"hr": torch.from_numpy(rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8))}

    def __len__(self) -> int:
        return self.length


class StreamData(pl.LightningDataModule):
    def __init__(self, length: int) -> None:
        super().__init__()
        self.stream = Stream(length)
        rng = np.random.default_rng(5)
        self.val = [
            {
                "hr": torch.from_numpy(rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)),
                "name": f"v{i}",
            }
            for i in range(2)
        ]

    def train_dataloader(self):
        return DataLoader(self.stream, batch_size=None)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=1)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        # As medsr's DataModules: random dihedral augmentation on the device (global torch RNG).
        return (
            eval_batch(batch, 2)
            if "name" in batch
            else train_batch(batch, 2, augment=self.trainer.training)
        )


def fit_stream(root: Path, epoch_length: int, ckpt: Path | None = None) -> pl.Trainer:
    pl.seed_everything(0, workers=True)
    net = build_model("edsr", 2, num_feat=8, num_block=1)
    module = SRModule(
        net,
        2,
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.MultiStepLR, milestones=[10], gamma=0.5),
    )
    checkpoints = ModelCheckpoint(
        dirpath=root,
        filename="step{step}",
        monitor="val/psnr_y",
        mode="max",
        save_top_k=-1,
        save_last=True,
        auto_insert_metric_name=False,
    )
    trainer = cpu_trainer(
        12,
        val_every=4,
        callbacks=[checkpoints, ResumeState(), EMAWeights(0.9)],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, StreamData(epoch_length), ckpt_path=ckpt)
    return trainer


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():  # the EMA weights (what evaluation reads)
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)
    for key, value in a["medsr_ema"]["net"].items():  # the raw weights training continues from
        torch.testing.assert_close(b["medsr_ema"]["net"][key], value, rtol=0, atol=0, msg=key)
    for ours, theirs in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for i, state in ours["state"].items():
            for name in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(theirs["state"][i][name], state[name], rtol=0, atol=0)
    assert a["lr_schedulers"] == b["lr_schedulers"]


@pytest.mark.parametrize("epoch_length", [4, 2], ids=["one-epoch-per-validation", "two-epochs"])
def test_run_resumed_at_an_epoch_end_is_bit_identical(tmp_path, epoch_length):
    fit_stream(tmp_path / "a", epoch_length)
    fit_stream(tmp_path / "b", epoch_length, ckpt=tmp_path / "a" / "step8.ckpt")
    a = torch.load(tmp_path / "a" / "step12.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "step12.ckpt", weights_only=True)
    assert_same_training_state(a, b)
    assert not torch.equal(
        a["state_dict"]["net.conv_first.weight"], a["medsr_ema"]["net"]["conv_first.weight"]
    )


def test_resume_mid_epoch_says_that_other_patches_follow(tmp_path):
    fit_stream(tmp_path / "a", 5)
    with pytest.warns(UserWarning, match="from the middle of an epoch.*other patches"):
        fit_stream(tmp_path / "b", 5, ckpt=tmp_path / "a" / "step8.ckpt")
    b = torch.load(tmp_path / "b" / "step12.ckpt", weights_only=True)
    assert b["global_step"] == 12


def test_resume_without_the_rng_state_differs(tmp_path):
    """The reference of the exact resume above: the same resume, with ResumeState's state removed."""
    fit_stream(tmp_path / "a", 4)
    ckpt = torch.load(tmp_path / "a" / "step8.ckpt", weights_only=True)
    del ckpt["medsr_resume"]
    torch.save(ckpt, tmp_path / "bare.ckpt")
    with pytest.warns(UserWarning, match="no RNG state"):
        fit_stream(tmp_path / "b", 4, ckpt=tmp_path / "bare.ckpt")
    a = torch.load(tmp_path / "a" / "step12.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "step12.ckpt", weights_only=True)
    assert not torch.equal(
        a["state_dict"]["net.conv_first.weight"], b["state_dict"]["net.conv_first.weight"]
    )


# -- the real entry point, killed with SIGKILL ------------------------------------------------
def small_val_dir(root: Path, samples_dir: Path) -> Path:
    """Two small validation images (whole-image validation of the 1411 px retina takes seconds)."""
    root.mkdir(parents=True, exist_ok=True)
    Image.open(samples_dir / "val" / "chelsea.png").crop((100, 50, 196, 146)).save(
        root / "chelsea.png"
    )
    Image.open(samples_dir / "val" / "microaneurysms.png").save(root / "microaneurysms.png")
    return root


def entry_args(samples_dir: Path, val_dir: Path) -> list[str]:
    # 8 training images, one patch each, batch 2: 4 batches per epoch; validation (and so
    # last.ckpt) every 4 steps, at epoch ends. Workers are started afresh each epoch from seeds
    # drawn from the restored RNG, so the data stream resumes exactly without a stateful dataset.
    return [
        "model.net.num_feat=8",
        "model.net.num_block=1",
        "model.ema_decay=0.9",
        "scale=2",
        "trainer=cpu",
        "trainer.max_steps=8",
        "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "data=folder",
        f"data.train_dirs=[{samples_dir / 'train'}]",
        f"data.val_dirs=[{val_dir}]",
        "data.patch_size=32",
        "data.batch_size=2",
        "data.patches_per_image=1",
        "data.num_workers=1",
        "data.persistent_workers=false",
        "test_after_fit=false",
        "comparison_figure=false",
        "export_weights=false",
    ]


@pytest.mark.slow
def test_killed_entry_point_run_resumes_to_the_same_weights(tmp_path, samples_dir, monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    args = entry_args(samples_dir, small_val_dir(tmp_path / "val", samples_dir))
    whole = run_module("medsr.train", *args, run_dir=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    kill = ["+callbacks.kill._target_=test_workflow_resume.KillAt", "+callbacks.kill.step=6"]
    killed = run_module("medsr.train", *args, *kill, run_dir=tmp_path / "run")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (
        torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == 4
    )
    resumed = run_module(
        "medsr.train", *args, "resume=auto", run_dir=tmp_path / "run"
    )  # the same command + resume=auto
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert "resume=auto: resuming from" in output and "draws other patches" not in output
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["global_step"] == 8
    assert_same_training_state(a, b)
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    assert sorted({int(r["step"]) for r in rows if r.get("train/l_pix")})[-4:] == list(range(4, 8))


# -- checkpoint files and finding them --------------------------------------------------------
def test_trainer_config_writes_checkpoints_atomically():
    cfg = compose_config("train", "trainer=cpu", "trainer.default_root_dir=.")
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_save_interrupted_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = atomic_torch_save({"step": 1, "w": torch.ones(3)}, tmp_path / "last.ckpt")
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        os.truncate(f, 10)  # half-written file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    plugin = AtomicCheckpointIO()
    plugin.save_checkpoint({"step": 3}, tmp_path / "sub" / "x.ckpt")
    assert plugin.load_checkpoint(tmp_path / "sub" / "x.ckpt")["step"] == 3


def test_resume_auto_finds_this_run_else_the_newest_earlier_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "EDSR_x2_f8b1_samples_12_B2"
    here = tmp_path / "outputs" / "train" / name / "2026-03-01"
    assert resume_checkpoint("auto", None, here, "train", name) is None  # nothing yet: a new run
    old = atomic_torch_save(
        {"step": 4},
        tmp_path / "outputs" / "train" / name / "2026-01-01" / "checkpoints" / "last.ckpt",
    )
    new = atomic_torch_save(
        {"step": 8},
        tmp_path / "multirun" / "train" / "2026-02-01" / f"0_{name}" / "checkpoints" / "last.ckpt",
    )
    other = atomic_torch_save(
        {"step": 9},
        tmp_path / "outputs" / "train" / "RCAN_x2" / "2026-04-01" / "checkpoints" / "last.ckpt",
    )
    broken = tmp_path / "outputs" / "train" / name / "2026-02-15" / "checkpoints" / "last.ckpt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(new.read_bytes()[:100])  # e.g. written by a tool without atomic saves
    os.utime(old, (1e9, 1e9))
    assert Path(resume_checkpoint("auto", None, here, "train", name)).resolve() == new.resolve()
    mine = atomic_torch_save({"step": 2}, here / "checkpoints" / "last.ckpt")
    os.utime(mine, (1e9, 1e9))  # older, but this run's own folder comes first
    assert Path(resume_checkpoint("auto", None, here, "train", name)) == mine
    assert resume_checkpoint(str(old.parents[1]), None, here, "train", name) == str(
        old
    )  # a run folder
    assert resume_checkpoint(None, str(other), here, "train", name) == str(other)
    assert resume_checkpoint(None, None, here, "train", name) is None
    with pytest.raises(ConfigError, match="either ckpt_path"):
        resume_checkpoint("auto", str(other), here, "train", name)
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        resume_checkpoint(None, "missing.ckpt", here, "train", name)
    with pytest.raises(ConfigError, match="resume=elsewhere"):
        resume_checkpoint("elsewhere", None, here, "train", name)


def test_last_checkpoint_is_rewritten_at_every_validation_even_without_improvement(tmp_path):
    """Lightning 2.6's save_last only rewrites last.ckpt along with a new best checkpoint; resume
    points must not depend on the validation score (a GAN's PSNR need not rise), and the end of
    training is one even between validations."""
    from medsr.training.factory import instantiate_group

    folder = tmp_path / "checkpoints"
    cfg = compose_config(
        "train",
        f"callbacks.model_checkpoint.dirpath={folder}",
        f"callbacks.last_checkpoint.dirpath={folder}",
        "~callbacks.val_images",
        "~callbacks.lr_monitor",
    )
    module = SRModule(
        build_model("edsr", 2, num_feat=8, num_block=1),
        2,
        optimizer=partial(torch.optim.SGD, lr=0.0),
    )
    trainer = cpu_trainer(7, val_every=2, callbacks=instantiate_group(cfg.callbacks))
    trainer.fit(module, StreamData(100))  # lr 0: the same PSNR at every validation
    assert [p.name for p in sorted(folder.glob("step*.ckpt"))] == [
        Path(trainer.checkpoint_callback.best_model_path).name
    ]
    assert (
        trainer.checkpoint_callback.best_model_path.endswith(".ckpt")
        and "step0000002" in trainer.checkpoint_callback.best_model_path
    )
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 7
