"""Thesis presets (conf/experiment/): every file composes to the thesis settings (DESIGN.md table),
run names follow BasicSR, and each fine-tuning preset starts from its DF2K run's weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import medsr
from helpers import compose_config
from medsr._cli import medsr_error
from medsr.conf.resolvers import register_resolvers
from medsr.errors import ConfigError
from medsr.models import build_model, save_weights

EXPERIMENTS = Path(medsr.__file__).parent / "conf" / "experiment"
# The thesis table: (arch, DF2K iterations, HR patch); lr 2e-4 (ESRGAN 1e-4), batch 16.
THESIS = {
    "EDSR": ("edsr", 300_000, 192),
    "RCAN": ("rcan", 300_000, 192),
    "RRDBNet": ("rrdbnet", 500_000, 192),
    "ESRGAN": ("rrdbnet", 400_000, 128),
}
SIZE = {"EDSR": "f256b32", "RCAN": "f64g10b20", "RRDBNet": "f64b23g32", "ESRGAN": "f64b23g32"}
SCALES = {"EDSR": (2, 3, 4), "RCAN": (2, 3, 4), "RRDBNet": (2, 4), "ESRGAN": (4,)}
STEPS = {"EDSR": 300, "RCAN": 300, "RRDBNet": 500, "ESRGAN": 400}
EXPECTED_RUNS = {  # every thesis run: (preset, scale) -> run name
    (f"{m.lower()}_df2k", s): f"{m}_x{s}_{SIZE[m]}_DF2K_{STEPS[m]}k_B16"
    for m in THESIS
    for s in SCALES[m]
}
TINY = {"num_feat": 16, "num_block": 1, "num_group": 1, "num_grow_ch": 4}
# Presets beyond the thesis are checked by their own tests (SwinIR: tests/test_swinir_workflow.py).
BEYOND_THESIS = (
    "quickstart",
    "quickstart_ct",
    "swinir_df2k",
    "swinir_light_df2k",
    "swinir_messidor",
    "swinir_light_messidor",
)
PRESETS = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml") if p.stem not in BEYOND_THESIS)
ALIASES = {
    f"{p.replace('_df2k', '')}_x{s}_df2k": (p, s) for p, s in EXPECTED_RUNS
}  # the names of 0.1
ALIASES |= {
    a.replace("_df2k", "_messidor"): (p.replace("_df2k", "_messidor"), s)
    for a, (p, s) in ALIASES.items()
}


def compose_train(*overrides: str):
    return compose_config("train", *overrides)


# Presets beyond the thesis table, tested in their own files.
OTHER_PRESETS = {  # Real-ESRGAN (tests/test_degradation_workflow.py)
    "realesrnet_df2k",
    "realesrgan_df2k",
    "realesrnet_messidor",
    "realesrgan_messidor",
}


def test_one_preset_per_model_and_dataset_and_the_old_names_kept():
    per_pair = {p for p, _ in EXPECTED_RUNS} | {
        p.replace("_df2k", "_messidor") for p, _ in EXPECTED_RUNS
    }
    assert set(PRESETS) == per_pair | set(ALIASES) | OTHER_PRESETS


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_old_preset_names_compose_to_the_same_config(alias):
    preset, scale = ALIASES[alias]
    old = OmegaConf.to_container(compose_train(f"experiment={alias}"), resolve=False)
    new = OmegaConf.to_container(
        compose_train(f"experiment={preset}", f"scale={scale}"), resolve=False
    )
    assert old == new


@pytest.mark.parametrize(("preset", "scale"), sorted(EXPECTED_RUNS))
def test_df2k_preset_matches_the_thesis_table(preset, scale):
    cfg = compose_train(f"experiment={preset}", f"scale={scale}")
    assert cfg.run_name == EXPECTED_RUNS[(preset, scale)]
    tag = cfg.model.tag
    arch, steps, patch = THESIS[tag]
    assert (cfg.model.arch, cfg.trainer.max_steps, cfg.data.patch_size, cfg.data.batch_size) == (
        arch,
        steps,
        patch,
        16,
    )
    assert cfg.data._target_ == "medsr.data.datamodules.DF2KDataModule"
    opt = cfg.model.lit.optimizer
    assert (opt._target_, opt.lr, list(opt.betas), opt.eps) == (
        "torch.optim.Adam",
        1e-4 if tag == "ESRGAN" else 2e-4,
        [0.9, 0.999],
        1e-8,
    )
    if tag == "ESRGAN":
        assert list(cfg.model.lit.scheduler.milestones) == [50_000, 100_000, 200_000, 300_000]
        assert cfg.model.ema_decay == 0.999 and cfg.model.lit.network_d.input_size == 128
        assert (cfg.model.lit.pixel_opt.loss_weight, cfg.model.lit.gan_opt.loss_weight) == (
            1e-2,
            5e-3,
        )
        assert dict(cfg.model.lit.perceptual_opt.layer_weights) == {"conv5_4": 1.0}
        assert cfg.checkpoint.select == "last"  # the last GAN weights, not the best PSNR
    else:
        assert list(cfg.model.lit.scheduler.milestones) == list(
            range(200_000, steps, 200_000)
        )  # halved every 200k
        assert cfg.model.lit.scheduler.gamma == 0.5 and cfg.model.ema_decay is None
        assert cfg.model.lit.pixel_opt.type == "L1Loss"
    # The network of the preset exists at this scale (checked on a tiny copy).
    tiny = {**cfg.model.net, **{k: v for k, v in TINY.items() if k in cfg.model.net}}
    assert build_model(cfg.model.arch, cfg.scale, **tiny).medsr_spec["scale"] == cfg.scale


@pytest.mark.parametrize(("preset", "scale"), sorted(EXPECTED_RUNS))
def test_messidor_preset_fine_tunes_its_df2k_run_for_under_half_the_iterations(preset, scale):
    df2k = compose_train(f"experiment={preset}", f"scale={scale}")
    cfg = compose_train(f"experiment={preset.replace('_df2k', '_messidor')}", f"scale={scale}")
    assert cfg.run_name == df2k.run_name.replace("_DF2K_", "_MESSIDOR2_").replace(
        f"_{df2k.trainer.max_steps // 1000}k_", f"_{cfg.trainer.max_steps // 1000}k_"
    )
    assert cfg.data._target_ == "medsr.data.datamodules.MessidorDataModule" and cfg.data.fov
    assert cfg.trainer.max_steps < df2k.trainer.max_steps / 2
    assert cfg.model.lit.optimizer.lr == df2k.model.lit.optimizer.lr / 2
    assert list(cfg.model.lit.scheduler.milestones) == [cfg.trainer.max_steps // 2]
    unresolved = OmegaConf.to_container(cfg.model, resolve=False)["init_from"]
    assert unresolved.startswith("${run_weights:")
    OmegaConf.register_new_resolver(
        "run_weights", lambda name: name, replace=True
    )  # the run it names
    try:
        assert cfg.model.init_from == df2k.run_name
    finally:
        OmegaConf.clear_resolver("run_weights")
        register_resolvers()
    for key in ("arch", "net", "tag", "ema_decay"):
        assert cfg.model[key] == df2k.model[key], key
    assert (cfg.scale, cfg.data.patch_size, cfg.data.batch_size) == (
        df2k.scale,
        df2k.data.patch_size,
        16,
    )


def test_init_from_finds_the_newest_finished_df2k_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "EDSR_x2_f256b32_DF2K_300k_B16"
    cfg = compose_train("experiment=edsr_messidor", "scale=2")
    with pytest.raises(
        Exception
    ) as err:  # OmegaConf wraps resolver errors; medsr.train unwraps them
        _ = cfg.model.init_from
    error = medsr_error(err.value)
    assert isinstance(error, ConfigError) and f"no finished run {name}" in str(error)
    assert "model.init_from=" in str(error)
    net = build_model("edsr", 2, num_feat=4, num_block=1)
    old = save_weights(
        net, tmp_path / "outputs" / "train" / name / "2026-01-01_00-00-00" / f"{name}.pth"
    )
    new = save_weights(
        net, tmp_path / "multirun" / "train" / "2026-02-01_00-00-00" / f"3_{name}" / f"{name}.pth"
    )
    (
        tmp_path / "outputs" / "train" / name / "2026-03-01_00-00-00"
    ).mkdir()  # an unfinished run: no weights
    os.utime(old, (1e9, 1e9))
    assert Path(cfg.model.init_from).resolve() == new.resolve()
    assert (
        torch.load(cfg.model.init_from, weights_only=True)["params"].keys()
        == net.state_dict().keys()
    )


def test_run_name_becomes_the_wandb_name_group_and_tags():
    cfg = compose_train("experiment=rcan_df2k", "scale=4", "logger=wandb")
    wandb = cfg.logger.wandb
    assert wandb.name == "RCAN_x4_f64g10b20_DF2K_300k_B16"
    assert wandb.group == wandb.name  # a single run: grouped with restarts of the same experiment
    assert list(wandb.tags) == ["RCAN", "x4", "f64g10b20", "DF2K", "300k", "B16"]


def test_slurm_launcher_config_sizes_jobs_from_the_trainer():
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="the slurm extra (hydra-submitit-launcher) is not installed",
    )
    cfg = compose_config(
        "train",
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "hydra.launcher.partition=gpu",
        return_hydra_config=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (
        launcher.tasks_per_node == launcher.gpus_per_node == 4
    )  # one task per GPU: Lightning's SLURM DDP
    assert launcher.max_num_timeout > 0  # requeued jobs continue with resume=auto
