"""Training protocol switches (docs/protocol.md): which checkpoint is exported and tested
(``checkpoint.select``), validation in float32 (``model.lit.eval_float32``), starting from another
scale's weights (``model.init_strict``, the x2 run), the EMA and discriminator of a fine-tune
(``params_ema``, ``model.init_from_d``), and the optimiser's betas."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from helpers import FAST_TRAIN, TINY_EDSR, compose_config, run_module
from medsr.conf.resolvers import register_resolvers
from medsr.errors import ConfigError, WeightsError
from medsr.evaluate import evaluate
from medsr.models import build_model, load_pretrained, save_weights
from medsr.models.discriminator import VGGStyleDiscriminator
from medsr.models.weights import export_discriminator
from medsr.models.weights.partial import load_matching
from medsr.training import SRModule
from medsr.training.callbacks import LastCheckpoint
from medsr.training.factory import (
    build_callbacks,
    build_module,
    build_network,
    checkpoint_selection,
    chosen_checkpoint,
)

TINY = {"num_feat": 8, "num_block": 1}
TINY_RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
GAN = [
    "model=esrgan",
    *(f"model.net.{k}={v}" for k, v in TINY_RRDB.items()),
    "model.lit.network_d.num_feat=8",
    "+model.lit.perceptual_opt.random_init_for_tests=true",
    "data.patch_size=32",
]


def states_equal(a: torch.nn.Module | dict, b: torch.nn.Module | dict, keys=None) -> bool:
    a = a if isinstance(a, dict) else a.state_dict()
    b = b if isinstance(b, dict) else b.state_dict()
    return all(torch.equal(a[k], b[k]) for k in (keys or a))


# -- checkpoint.select and float32 validation, through a tiny run -----------------------------
def logged_val_psnr(run_dir: Path) -> tuple[int, float]:
    """(number of validations, the last logged val/psnr_y) of a run."""
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    values = [float(r["val/psnr_y"]) for r in rows if r["val/psnr_y"]]
    return len(values), values[-1]


def evaluate_checkpoint(ckpt: Path, out_dir: Path, *overrides: str) -> float:
    """``medsr.evaluate``'s PSNR of ``ckpt`` on the samples' validation images."""
    cfg = compose_config(
        "evaluate",
        *TINY_EDSR,
        f"ckpt={ckpt}",
        "data=samples",
        "scale=2",
        "baselines=[]",
        "progress=false",
        *overrides,
    )
    (row,) = evaluate(cfg, out_dir)
    return row["psnr"]


@pytest.fixture(scope="module")
def last_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("last") / "run"
    run = run_module(
        "medsr.train",
        *TINY_EDSR,
        *FAST_TRAIN,
        "data=samples",
        "scale=2",
        "checkpoint.select=last",
        "comparison_figure=false",
        run_dir=run_dir,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run_dir, run


def test_select_last_exports_and_tests_the_final_weights(last_run):
    run_dir, run = last_run
    exported = next(run_dir.glob("*.pth"))
    content = torch.load(exported, weights_only=True)
    assert content["medsr_checkpoint"] == {"select": "last", "step": 4, "file": "last.ckpt"}
    last = run_dir / "checkpoints" / "last.ckpt"
    net = build_model("edsr", 2, **TINY)
    assert states_equal(
        load_pretrained(net, exported), load_pretrained(build_model("edsr", 2, **TINY), last)
    )
    assert (
        f"checkpoint.select=last: {last}" in run.stdout + run.stderr
    )  # what test_after_fit scored


def test_logged_validation_psnr_equals_evaluate(last_run, tmp_path):
    run_dir, _ = last_run
    validations, logged = logged_val_psnr(run_dir)
    assert validations == 2  # steps 2 and 4: the last one saw the weights of last.ckpt
    assert math.isclose(
        logged, evaluate_checkpoint(run_dir / "checkpoints" / "last.ckpt", tmp_path), abs_tol=1e-3
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_trained_validation_psnr_equals_evaluate_on_gpu(tmp_path):
    run = run_module(
        "medsr.train",
        *TINY_EDSR,
        *FAST_TRAIN,
        "data=samples",
        "scale=2",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.precision=bf16-mixed",
        "checkpoint.select=last",
        "comparison_figure=false",
        run_dir=tmp_path / "run",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    validations, logged = logged_val_psnr(tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ours = evaluate_checkpoint(ckpt, tmp_path, "device=cuda", "precision=32")
    assert validations == 2 and math.isclose(logged, ours, abs_tol=1e-3)


def test_chosen_checkpoint_follows_the_selection(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/psnr_y", mode="max")
    last = LastCheckpoint(dirpath=str(tmp_path))
    best_file = tmp_path / "step0000100_psnr30.1.ckpt"
    best_file.touch()
    best.best_model_path, last.best_model_path = str(best_file), "last.ckpt"
    trainer = SimpleNamespace(checkpoint_callbacks=[best, last])
    assert chosen_checkpoint(trainer, "best") == str(best_file)
    assert chosen_checkpoint(trainer, "last") == "last.ckpt"
    with pytest.raises(ConfigError, match="callbacks.last_checkpoint"):
        chosen_checkpoint(SimpleNamespace(checkpoint_callbacks=[best]), "last")
    assert checkpoint_selection(compose_config("train")) == "best"
    assert (
        checkpoint_selection(compose_config("train", "experiment=rcan_df2k", "scale=2")) == "last"
    )
    assert (
        checkpoint_selection(compose_config("train", "experiment=edsr_messidor", "scale=2"))
        == "last"
    )
    with pytest.raises(ConfigError, match="checkpoint.select=final is not known"):
        checkpoint_selection(compose_config("train", "checkpoint.select=final"))


@pytest.mark.parametrize("eval_float32", [True, False])
def test_validation_forward_pass_in_float32_under_autocast(eval_float32):
    torch.manual_seed(0)
    module = SRModule(build_model("edsr", 2, **TINY), 2, optimizer=None, eval_float32=eval_float32)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        reference = module.super_resolve(lr) if eval_float32 else None
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as Lightning's bf16-mixed
            sr = module.super_resolve(lr)
        plain = SRModule(module.net, 2, optimizer=None).super_resolve(lr)
    assert sr.dtype == torch.float32
    if eval_float32:
        assert torch.equal(sr, reference) and torch.equal(sr, plain)
    else:
        assert not torch.equal(sr, plain)  # bf16 moves some SR pixels by a level


# -- initialisation from another scale ---------------------------------------------------------
@pytest.mark.parametrize("scale", [3, 4])
def test_x2_weights_load_into_x3_and_x4_but_the_upsampler(tmp_path, caplog, scale):
    x2 = build_model("edsr", 2, **TINY)
    path = save_weights(x2, tmp_path / "x2.pth")
    net = build_model("edsr", scale, **TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="medsr.models.weights.partial"):
        kept = load_matching(net, path)
    # x4's first upsampling conv has x2's shape and loads; x3's does not.
    assert kept == (
        ["upsample.0.weight", "upsample.0.bias"]
        if scale == 3
        else ["upsample.2.weight", "upsample.2.bias"]
    )
    assert states_equal(net, before, kept)  # kept their initialisation
    rest = [k for k in net.state_dict() if k not in kept]
    assert states_equal(net, load_pretrained(build_model("edsr", 2, **TINY), path), rest)
    (line,) = [r.getMessage() for r in caplog.records if "initialised from" in r.getMessage()]
    assert ", ".join(kept) in line


def test_rrdbnet_x2_to_x4_skips_the_pixel_unshuffle_input(tmp_path):
    path = save_weights(build_model("rrdbnet", 2, **TINY_RRDB), tmp_path / "x2.pth")
    assert load_matching(build_model("rrdbnet", 4, **TINY_RRDB), path) == ["conv_first.weight"]


def test_more_than_the_scale_layers_skipped_is_an_error(tmp_path):
    path = save_weights(build_model("edsr", 2, **TINY), tmp_path / "b1.pth")
    net = build_model("edsr", 4, num_feat=8, num_block=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(WeightsError, match=r"init_strict=false.*body\.1\.conv1\.weight"):
        load_matching(net, path)
    assert states_equal(net, before)  # nothing loaded


def test_df2k_presets_start_x3_and_x4_from_the_x2_run(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    net_overrides = [
        f"model.net.num_feat={TINY['num_feat']}",
        f"model.net.num_block={TINY['num_block']}",
    ]

    def compose(scale: int):
        return compose_config("train", "experiment=edsr_df2k", f"scale={scale}", *net_overrides)

    assert compose(3).model.init_strict is False
    with caplog.at_level(logging.INFO, logger="medsr.training.resume"):
        assert compose(3).model.init_from is None  # no x2 run yet: from scratch, and said
    assert (
        "no finished x2 run EDSR_x2_f8b1_DF2K_300k_B16 found: x3 trains from scratch" in caplog.text
    )
    folder = tmp_path / "outputs" / "train" / "EDSR_x2_f8b1_DF2K_300k_B16" / "2026-01-01_00-00-00"
    x2 = build_model("edsr", 2, **TINY)
    path = save_weights(x2, folder / "EDSR_x2_f8b1_DF2K_300k_B16.pth")
    assert compose(2).model.init_from is None  # x2 never starts from itself
    for scale in (3, 4):
        cfg = compose(scale)
        assert Path(cfg.model.init_from).resolve() == path.resolve()
        net = build_network(cfg)
        assert states_equal(
            net,
            load_pretrained(build_model("edsr", 2, **TINY), path),
            ["body.0.conv1.weight", "conv_after_body.weight"],
        )
    messidor = compose_config("train", "experiment=edsr_messidor", "scale=3", *net_overrides)
    assert messidor.model.init_strict is True  # the same scale's DF2K run: strict


def test_fine_tune_takes_params_for_the_network_and_params_ema_for_its_average(tmp_path):
    raw, average = (build_model("rrdbnet", 4, **TINY_RRDB) for _ in range(2))
    path = tmp_path / "ESRGAN_x4.pth"
    torch.save({"params": raw.state_dict(), "params_ema": average.state_dict()}, path)
    tiny = [f"model.net.{k}={v}" for k, v in TINY_RRDB.items()]
    cfg = compose_config(
        "train",
        "model=rrdbnet",
        *tiny,
        "scale=4",
        f"model.init_from={path}",
        "model.ema_decay=0.999",
        "~callbacks",
    )
    net = build_network(cfg)
    assert states_equal(net, raw)
    (ema,) = build_callbacks(cfg)  # (cfg without the other callbacks: no Hydra run folder)
    ema.on_fit_start(None, SimpleNamespace(net=net))
    assert states_equal(ema.average, average) and int(ema._average_model.n_averaged) == 1
    ema._average_model.update_parameters(net)  # the average continues, from params_ema
    w = "body.0.rdb1.conv1.weight"
    want = 0.999 * average.state_dict()[w] + 0.001 * raw.state_dict()[w]
    torch.testing.assert_close(ema.average.state_dict()[w], want)
    # Without EMA the network takes the average, the better weights.
    plain = compose_config("train", "model=rrdbnet", *tiny, "scale=4", f"model.init_from={path}")
    assert states_equal(build_network(plain), average)


def test_discriminator_starts_from_the_df2k_run(tmp_path):
    d = VGGStyleDiscriminator(3, 8, 32)
    checkpoint = {
        "state_dict": {f"net_d.{k}": v for k, v in d.state_dict().items()},
        "global_step": 7,
    }
    path = export_discriminator(
        VGGStyleDiscriminator(3, 8, 32), checkpoint, tmp_path / "x_net_d.pth", "last"
    )
    assert torch.load(path, weights_only=True)["medsr_checkpoint"] == {"select": "last", "step": 7}
    cfg = compose_config("train", *GAN, "scale=4", f"model.init_from_d={path}")
    module = build_module(cfg, build_network(cfg))
    assert states_equal(module.net_d, d)
    fresh = build_module(cfg, build_network(cfg), init=False)  # a resumed run: from its checkpoint
    assert not states_equal(fresh.net_d, d)
    psnr = compose_config("train", *TINY_EDSR, f"model.init_from_d={path}")
    with pytest.raises(ConfigError, match="trains no discriminator"):
        build_module(psnr, build_network(psnr))


def test_esrgan_fine_tune_preset_names_the_df2k_discriminator():
    cfg = compose_config("train", "experiment=esrgan_messidor")
    OmegaConf.register_new_resolver(
        "run_weights", lambda name, suffix="": name + suffix, replace=True
    )
    try:
        assert cfg.model.init_from == "ESRGAN_x4_f64b23g32_DF2K_400k_B16"
        assert cfg.model.init_from_d == "ESRGAN_x4_f64b23g32_DF2K_400k_B16_net_d"
    finally:
        OmegaConf.clear_resolver("run_weights")
        register_resolvers()
    assert cfg.model.ema_decay == 0.999 and cfg.checkpoint.select == "last"


@pytest.mark.parametrize("betas", [[0.9, 0.999], [0.9, 0.99]])
def test_adam_betas_switch_reaches_the_optimiser(betas):
    cfg = compose_config(
        "train", *GAN, "scale=4", f"model.lit.optimizer.betas=[{betas[0]},{betas[1]}]"
    )
    module = build_module(cfg, build_network(cfg))
    opt_g, opt_d = module.configure_optimizers()[0]
    assert opt_g.defaults["betas"] == tuple(betas) and opt_d.defaults["betas"] == tuple(betas)
    assert compose_config("train", "experiment=esrgan_df2k").model.lit.optimizer.betas == [
        0.9,
        0.999,
    ]


def test_scheduler_switch_reaches_the_optimiser():
    cfg = compose_config("train", *TINY_EDSR, "model.lit.scheduler.milestones=[3,5]")
    module = build_module(cfg, build_network(cfg))
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert sorted(scheduler.milestones) == [3, 5] and scheduler.gamma == 0.5
