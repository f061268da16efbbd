"""``trainer=ddp``: two CPU processes (gloo) through the real entry point train on different data and
end with the same weights (EDSR with EMA; ESRGAN's generator and discriminator, two optimisers,
manual optimisation); one process writes the files and prints the summary."""

from __future__ import annotations

import os
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image

from helpers import run_module

TESTS = Path(__file__).parent


class DumpRank(pl.Callback):
    """Entry-point runs only (``+callbacks.dump._target_=test_workflow_ddp.DumpRank``): each rank
    saves its first training batch and its final weights (raw: generator and discriminator; EMA:
    the generator at the end of training) to ``<folder>/rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.first_batch = None
        self.raw = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_batch is None:
            self.first_batch = batch["hr"].detach().cpu().clone()

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        state = pl_module.state_dict()
        self.raw = {
            k: v.detach().cpu().clone()
            for k, v in state.items()
            if k.startswith(("net.", "net_d."))
        }

    def on_train_end(self, trainer, pl_module) -> None:  # after EMAWeights put the average in
        self.folder.mkdir(parents=True, exist_ok=True)
        ema = {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}
        content = {
            "first_batch": self.first_batch,
            "raw": self.raw,
            "ema": ema,
            "world": trainer.world_size,
            "step": trainer.global_step,
        }
        torch.save(content, self.folder / f"rank{trainer.global_rank}.pt")


TINY = {
    "edsr": [
        "model.net.num_feat=8",
        "model.net.num_block=1",
        "model.ema_decay=0.9",
        "scale=2",
        "data.patch_size=32",
    ],
    "esrgan": [
        "model=esrgan",
        "model.net.num_feat=8",
        "model.net.num_block=1",
        "model.net.num_grow_ch=4",
        "model.lit.network_d.num_feat=8",
        "+model.lit.perceptual_opt.random_init_for_tests=true",
        "scale=4",
        "data.patch_size=32",
        "test_after_fit=false",
        "comparison_figure=false",
    ],
}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the perceptual loss uses a randomly initialised VGG19")
@pytest.mark.parametrize("model", ["edsr", "esrgan"])
def test_two_process_ddp_ranks_agree_on_the_weights(tmp_path, samples_dir, monkeypatch, model):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    val = tmp_path / "val"
    val.mkdir()
    Image.open(samples_dir / "val" / "chelsea.png").crop((100, 50, 196, 146)).save(
        val / "chelsea.png"
    )
    Image.open(samples_dir / "val" / "microaneurysms.png").crop((0, 0, 96, 96)).save(
        val / "microaneurysms.png"
    )
    run = run_module(
        "medsr.train",
        *TINY[model],
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "data=folder",
        f"data.train_dirs=[{samples_dir / 'train'}]",
        f"data.val_dirs=[{val}]",
        "data.batch_size=2",
        "data.num_workers=0",
        "+callbacks.dump._target_=test_workflow_ddp.DumpRank",
        f"+callbacks.dump.folder={tmp_path / 'ranks'}",
        run_dir=tmp_path / "run",
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    ranks = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [4, 4]
    # Data parallel: each rank trained on its own shard ...
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])
    # ... and gradients were averaged: identical weights on both ranks. (The discriminator's
    # BatchNorm statistics are per rank; DDP copies rank 0's at the start of every step.)
    for kind in ("raw", "ema"):
        for key, value in ranks[0][kind].items():
            if ".running_" not in key and not key.endswith("num_batches_tracked"):
                torch.testing.assert_close(
                    ranks[1][kind][key], value, rtol=0, atol=0, msg=f"{kind} {key}"
                )
    ckpt = torch.load(
        tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True
    )  # written once, by rank 0
    assert ckpt["global_step"] == 4
    if model == "esrgan":
        assert (
            any(k.startswith("net_d.") for k in ranks[0]["raw"])
            and len(ckpt["optimizer_states"]) == 2
        )
        torch.testing.assert_close(
            ckpt["state_dict"]["net_d.conv0_0.weight"],
            ranks[0]["raw"]["net_d.conv0_0.weight"],
            rtol=0,
            atol=0,
        )
        return
    assert not torch.equal(
        ranks[0]["raw"]["net.conv_first.weight"], ranks[0]["ema"]["conv_first.weight"]
    )
    torch.testing.assert_close(
        ckpt["medsr_ema"]["net"]["conv_first.weight"],
        ranks[0]["raw"]["net.conv_first.weight"],
        rtol=0,
        atol=0,
    )
    assert (
        len(re.findall(r"^train: EDSR_f8b1 x2 ", run.stdout, re.M)) == 1
    )  # the summary, from rank 0 only
    assert (
        "sync_dist=True" not in output
    )  # metrics are reduced by torchmetrics; no Lightning DDP hint
