"""ESRGAN: relativistic and perceptual losses against their formulas, the two-optimizer module
(updates, skips, precision), the model=esrgan preset, init from official files, and a short
run through ``python -m medsr.train`` that resumes from its mid-run checkpoint."""

from __future__ import annotations

import copy
import csv
import logging
import math
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader, Dataset

import medsr
from helpers import compose_config, cpu_trainer, official_esrgan_file, run_module
from medsr.data.convert import to_float_tensor, to_rgb
from medsr.data.image_io import read_image
from medsr.errors import ConfigError, MedsrError, WeightsError
from medsr.models import build_model, load_pretrained, save_weights
from medsr.ops import imresize, quantize
from medsr.training.factory import build_module, build_network
from medsr.training.losses import (
    PerceptualLoss,
    RelativisticGANLoss,
    build_gan_loss,
    build_perceptual_loss,
)

CONF_DIR = str(Path(medsr.__file__).parent / "conf")
PATCH = 32
TINY_G = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
TINY_GAN = [
    "model=esrgan",
    *(f"model.net.{k}={v}" for k, v in TINY_G.items()),
    "model.lit.network_d.num_feat=8",
    "+model.lit.perceptual_opt.random_init_for_tests=true",
    f"data.patch_size={PATCH}",
]
LOSS_KEYS = [
    "l_g_pix",
    "l_g_percep",
    "l_g_gan",
    "l_d_real",
    "l_d_fake",
    "d_real_mean",
    "d_fake_mean",
]
pytestmark = pytest.mark.filterwarnings(
    "ignore:the perceptual loss uses a randomly initialised VGG19"
)


def compose_train(*overrides: str):
    return compose_config("train", "data=samples", "scale=4", *overrides)


class Crops(Dataset):
    """Fixed HR crops of the shipped training images with MATLAB-bicubic 8-bit LR, as the pipeline makes."""

    def __init__(self, samples_dir: Path, n: int = 4) -> None:
        paths = sorted((samples_dir / "train").iterdir())[:n]
        hr = [
            to_float_tensor(to_rgb(read_image(p)))[:, 40 : 40 + PATCH, 60 : 60 + PATCH]
            for p in paths
        ]
        self.hr = torch.stack(hr)
        self.lr = quantize(imresize(self.hr, 1 / 4))

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"hr": self.hr[i], "lr": self.lr[i]}


@pytest.fixture(scope="module")
def crops(samples_dir) -> Crops:
    return Crops(samples_dir)


def fit(
    module, crops: Crops, steps: int, ckpt_path: Path | None = None, **trainer_kwargs
) -> pl.Trainer:
    """``steps`` iterations, each on all four crops (one batch per epoch: resumed runs see the same data)."""
    trainer = cpu_trainer(steps, **trainer_kwargs)
    trainer.fit(module, DataLoader(crops, batch_size=4), ckpt_path=ckpt_path)
    return trainer


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def d_gap(module, batch) -> float:
    """mean C(real) - mean C(fake) on a fixed batch, BatchNorm in batch-statistics mode as in
    training (on a copy, so the module's running statistics stay untouched)."""
    net_d = copy.deepcopy(module.net_d).train()
    return float(net_d(batch["hr"]).mean() - net_d(module(batch["lr"])).mean())


def tiny_module(cfg):
    torch.manual_seed(0)  # same G/D init and same random VGG every time
    return build_module(cfg, build_network(cfg))


# -- losses ------------------------------------------------------------------------------------


def test_relativistic_loss_matches_the_esrgan_formula():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 1, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64) - 1
    log_sig = F.logsigmoid
    # ESRGAN eq. (1)-(2): D_Ra(a, b) = sigmoid(C(a) - E[C(b)]).
    d_real_ref = -log_sig(real - fake.mean()).mean()
    d_fake_ref = -log_sig(-(fake - real.mean())).mean()  # log(1 - sigmoid(z)) = logsigmoid(-z)
    g_ref = 0.5 * (-log_sig(-(real - fake.mean())).mean() - log_sig(fake - real.mean()).mean())
    loss = RelativisticGANLoss(loss_weight=5e-3)
    torch.testing.assert_close(
        loss.relative(real, fake, more_real=True).double(), d_real_ref, rtol=1e-6, atol=1e-7
    )
    torch.testing.assert_close(
        loss.relative(fake, real, more_real=False).double(), d_fake_ref, rtol=1e-6, atol=1e-7
    )
    torch.testing.assert_close(
        loss.generator_loss(real, fake).double(), 5e-3 * g_ref, rtol=1e-6, atol=1e-9
    )
    lsgan = RelativisticGANLoss(gan_type="lsgan", loss_weight=1.0)
    torch.testing.assert_close(
        lsgan.relative(real, fake, more_real=True).double(),
        ((real - fake.mean() - 1) ** 2).mean(),
        rtol=1e-6,
        atol=1e-7,
    )


def test_relativistic_loss_is_float32_under_autocast():
    real = torch.tensor([[3.1], [2.9]], dtype=torch.bfloat16)
    fake = torch.tensor([[2.95], [3.05]], dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = RelativisticGANLoss().relative(real, fake, more_real=True)
    assert out.dtype == torch.float32
    ref = -F.logsigmoid(real.double() - fake.double().mean()).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)


def test_perceptual_loss_is_the_weighted_feature_distance():
    torch.manual_seed(0)
    loss = PerceptualLoss(
        {"conv3_4": 0.5, "conv5_4": 1.0},
        perceptual_weight=2.0,
        criterion="l2",
        random_init_for_tests=True,
    )
    # torchvision's VGG init: activations that do not vanish by conv5_4, unlike the default init.
    for m in loss.vgg.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)
    hr = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(sr, hr)
    feats_sr, feats_hr = loss.vgg(sr), loss.vgg(hr)
    ref = 2.0 * (
        0.5 * F.mse_loss(feats_sr["conv3_4"], feats_hr["conv3_4"])
        + F.mse_loss(feats_sr["conv5_4"], feats_hr["conv5_4"])
    )
    torch.testing.assert_close(value, ref)
    assert value.item() > 1e-3
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # the target is a constant
    assert all(p.grad is None for p in loss.parameters())  # VGG stays frozen


@pytest.mark.parametrize(
    ("builder", "opt", "pattern"),
    [
        (build_perceptual_loss, {"vgg_type": "vgg16"}, "vgg_type='vgg16'"),
        (build_perceptual_loss, {"style_weight": 1.0}, "style_weight must be 0"),
        (build_perceptual_loss, {"criterion": "fro"}, "criterion='fro'"),
        (
            build_perceptual_loss,
            {"layer_weight": {"conv5_4": 1}},
            "perceptual_opt.layer_weight is not a setting",
        ),
        (
            build_perceptual_loss,
            {"layer_weights": {"conv6_1": 1}, "random_init_for_tests": True},
            "conv6_1",
        ),
        (build_gan_loss, {"gan_type": "wgan"}, "gan_type='wgan'"),
        (build_gan_loss, {"type": "HingeLoss"}, "gan_opt.type='HingeLoss'"),
    ],
)
def test_loss_settings_are_checked(builder, opt, pattern):
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        builder(opt)


def test_missing_vgg_weights_name_file_location_and_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        build_perceptual_loss({"layer_weights": {"conv5_4": 1.0}})
    message = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "model.lit.perceptual_opt.vgg_weights" in message
    with pytest.raises(WeightsError, match=re.escape(str(tmp_path / "nowhere.pth"))):
        build_perceptual_loss({"vgg_weights": str(tmp_path / "nowhere.pth")})


# -- the preset --------------------------------------------------------------------------------


def test_esrgan_preset_is_the_papers_setup():
    cfg = compose_train(
        "model=esrgan", "data.patch_size=128", "data.batch_size=16", "trainer.max_steps=400000"
    )
    lit = cfg.model.lit
    assert lit._target_ == "medsr.training.esrgan_module.ESRGANModule"
    assert (cfg.model.arch, dict(cfg.model.net)) == (
        "rrdbnet",
        {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "num_in_ch": 3, "num_out_ch": 3},
    )
    assert (lit.optimizer.lr, list(lit.optimizer.betas), dict(lit.optimizer_d)) == (
        1e-4,
        [0.9, 0.999],
        {},
    )
    assert (list(lit.scheduler.milestones), lit.scheduler.gamma) == (
        [50000, 100000, 200000, 300000],
        0.5,
    )
    assert (lit.pixel_opt.type, lit.pixel_opt.loss_weight) == ("L1Loss", 1e-2)
    assert dict(lit.perceptual_opt.layer_weights) == {"conv5_4": 1.0}
    assert (lit.perceptual_opt.perceptual_weight, lit.perceptual_opt.criterion) == (1.0, "l1")
    assert lit.perceptual_opt.use_input_norm and "random_init_for_tests" not in lit.perceptual_opt
    assert (lit.gan_opt.gan_type, lit.gan_opt.loss_weight) == ("vanilla", 5e-3)
    assert lit.network_d.input_size == 128  # follows data.patch_size
    assert cfg.run_name.startswith("ESRGAN_x4_f64b23g32_") and cfg.run_name.endswith("_400k_B16")
    assert (
        compose_train("model=esrgan", "model.init_from=psnr.pth").model.lit.init_from == "psnr.pth"
    )


def test_init_from_an_official_rrdbnet_file_and_fresh_discriminator(tmp_path):
    torch.manual_seed(1)
    source = build_model("rrdbnet", 4, **TINY_G)
    path = official_esrgan_file(source, tmp_path / "RRDB_PSNR_x4.pth")
    cfg = compose_train(*TINY_GAN, f"model.init_from={path}")
    net = build_network(cfg)
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    module = build_module(cfg, net)
    assert module.init_from == str(path) and module.net is net
    assert module.hparams.network_d["input_size"] == PATCH


# -- the module --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(crops, tmp_path_factory):
    """20 iterations of the composed tiny preset, from an official-format RRDBNet file."""
    torch.manual_seed(1)
    path = official_esrgan_file(
        build_model("rrdbnet", 4, **TINY_G), tmp_path_factory.mktemp("w") / "psnr.pth"
    )
    cfg = compose_train(*TINY_GAN, f"model.init_from={path}", "model.lit.scheduler.milestones=[15]")
    module = tiny_module(cfg)
    batch = {"hr": crops.hr, "lr": crops.lr}
    before = {"state": params(module), "gap": d_gap(module, batch)}
    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            losses.append({k: float(trainer.callback_metrics[f"train/{k}"]) for k in LOSS_KEYS})

    trainer = fit(module, crops, 20, callbacks=[Record()])
    return {
        "module": module,
        "trainer": trainer,
        "before": before,
        "losses": losses,
        "batch": batch,
        "cfg": cfg,
    }


def test_twenty_iterations_count_as_twenty_steps(trained):
    trainer, module = trained["trainer"], trained["module"]
    assert trainer.global_step == 20 and len(trained["losses"]) == 20  # the D step is not counted
    opt_g, opt_d = (o.optimizer for o in module.optimizers())
    assert all(int(s["step"]) == 20 for opt in (opt_g, opt_d) for s in opt.state.values())
    assert [s.last_epoch for s in module.lr_schedulers()] == [20, 20]
    lrs = [opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]]
    assert lrs == [5e-5, 5e-5]  # halved at 15
    assert module.nonfinite_skips == 0


def test_all_losses_finite_and_both_networks_learn(trained):
    assert all(math.isfinite(v) for row in trained["losses"] for v in row.values())
    before, after = trained["before"]["state"], params(trained["module"])
    for prefix in ("net.", "net_d."):
        changed = [
            k
            for k in before
            if k.startswith(prefix)
            and k.endswith("weight")
            and not torch.equal(before[k], after[k])
        ]
        total = [k for k in before if k.startswith(prefix) and k.endswith("weight")]
        assert changed == total, (
            f"{prefix} weights left unchanged: {sorted(set(total) - set(changed))}"
        )
    vgg = [k for k in before if k.startswith("perceptual_loss.")]
    assert vgg and all(torch.equal(before[k], after[k]) for k in vgg)  # frozen


def test_discriminator_separates_real_from_fake(trained):
    before, after = trained["before"]["gap"], d_gap(trained["module"], trained["batch"])
    assert abs(before) < 0.5, before
    assert after > before + 1.0, (before, after)
    last = trained["losses"][-1]
    assert last["d_real_mean"] > last["d_fake_mean"]


def test_resume_from_a_mid_run_checkpoint_reproduces_the_uninterrupted_run(
    trained, crops, tmp_path
):
    first = tiny_module(trained["cfg"])
    fit(first, crops, 10).save_checkpoint(tmp_path / "mid.ckpt")
    resumed = tiny_module(trained["cfg"])  # fresh weights: everything must come from the file
    trainer = fit(resumed, crops, 20, ckpt_path=tmp_path / "mid.ckpt")
    assert trainer.global_step == 20
    reference = trained["module"]
    for key, value in reference.state_dict().items():  # G, D (with BatchNorm statistics), VGG
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    for ours, theirs in zip(resumed.optimizers(), reference.optimizers(), strict=True):
        for state, ref in zip(
            ours.optimizer.state.values(), theirs.optimizer.state.values(), strict=True
        ):
            assert all(torch.equal(state[k], ref[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert [s.state_dict() for s in resumed.lr_schedulers()] == [
        s.state_dict() for s in reference.lr_schedulers()
    ]


def test_non_finite_losses_skip_then_stop(crops, caplog):
    cfg = compose_train(*TINY_GAN, "model.lit.max_nonfinite_steps=3")
    module = build_module(cfg, build_network(cfg))
    before = dict(module.named_parameters())
    before = {k: v.detach().clone() for k, v in before.items()}

    class NaNInput(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batch["lr"][0, 0, 0, 0] = float("nan")

    with caplog.at_level(logging.WARNING, logger="medsr.training.esrgan_module"):
        with pytest.raises(
            MedsrError, match=r"3 iterations in a row had a non-finite loss.*model.lit.optimizer.lr"
        ):
            fit(module, crops, 10, callbacks=[NaNInput()])
    skips = [r for r in caplog.records if "non-finite generator loss" in r.getMessage()]
    assert len(skips) == 3 and "3 skipped so far" in skips[-1].getMessage()
    assert module.nonfinite_skips == 3 and module.global_step == 0
    # No parameter was stepped (BatchNorm running statistics do see the bad batch).
    assert all(torch.equal(before[k], v) for k, v in module.named_parameters())


def test_training_from_scratch_warns(crops):
    cfg = compose_train(*TINY_GAN)
    module = build_module(cfg, build_network(cfg))
    with pytest.warns(UserWarning, match="from scratch.*model.init_from"):
        fit(module, crops, 1)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_step_on_cpu(crops, precision):
    # One step only: reduced-precision convolutions are very slow on CPU. Lightning turns
    # 16-mixed into bf16 on CPU, so the fp16 + GradScaler path gets its plugin explicitly.
    cfg = compose_train(*TINY_GAN)
    module = build_module(cfg, build_network(cfg))
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    if precision == "16-mixed":
        plugin = MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**8))
        trainer = fit(module, crops, 1, plugins=[plugin])
    else:
        trainer = fit(module, crops, 1, precision=precision)
    assert trainer.global_step == 1
    metrics = {k: float(trainer.callback_metrics[f"train/{k}"]) for k in LOSS_KEYS}
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    for prefix in ("net.", "net_d."):  # both optimizers stepped (through the scaler for fp16)
        assert any(
            not torch.equal(before[k], v)
            for k, v in module.named_parameters()
            if k.startswith(prefix)
        )


# -- through the entry point -------------------------------------------------------------------

ENTRY = [
    *TINY_GAN,
    "trainer=cpu",
    "trainer.val_check_interval=10",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "data.batch_size=2",
    "data.num_workers=0",
    "model.lit.scheduler.milestones=[15]",
    # Keep every validation's checkpoint, whatever its PSNR: a GAN's PSNR need not rise.
    "callbacks.model_checkpoint.monitor=null",
    "callbacks.model_checkpoint.save_top_k=-1",
    "comparison_figure=false",
]


@pytest.fixture(scope="module")
def entry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("entry")
    torch.manual_seed(1)
    init = official_esrgan_file(build_model("rrdbnet", 4, **TINY_G), root / "RRDB_PSNR_x4.pth")
    run = run_module(
        "medsr.train",
        *ENTRY,
        "trainer.max_steps=20",
        f"model.init_from={init}",
        run_dir=root / "run",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {"dir": root / "run", "init": init, "run": run}


def checkpoint(run_dir: Path, step: int) -> dict:
    (path,) = (run_dir / "checkpoints").glob(f"step{step:07d}_*.ckpt")
    return torch.load(path, map_location="cpu", weights_only=True)


def test_entry_point_run_logs_finite_losses_and_both_lrs(entry_run):
    rows = list(csv.DictReader(open(entry_run["dir"] / "csv" / "metrics.csv")))
    for key in LOSS_KEYS:
        values = [float(r[f"train/{key}"]) for r in rows if r.get(f"train/{key}")]
        assert len(values) == 20 and all(math.isfinite(v) for v in values), key
    for key in ("train/lr_g", "train/lr_d"):
        lrs = [float(r[key]) for r in rows if r.get(key)]
        assert lrs[0] == 1e-4 and lrs[-1] == 5e-5, key
    assert any(r.get("val/psnr_y") for r in rows) and any(r.get("test/psnr_y") for r in rows)
    assert "from scratch" not in entry_run["run"].stderr


def test_checkpoints_hold_g_and_d_but_not_vgg_and_export_the_generator(entry_run, tmp_path):
    ckpt = checkpoint(entry_run["dir"], 20)
    prefixes = {k.split(".")[0] for k in ckpt["state_dict"]}
    assert prefixes == {"net", "net_d"}
    assert ckpt["global_step"] == 20 and len(ckpt["optimizer_states"]) == 2
    init = torch.load(entry_run["init"], weights_only=True)
    assert not torch.equal(ckpt["state_dict"]["net.conv_first.weight"], init["conv_first.weight"])
    # The generator alone, for medsr.predict: from the checkpoint, and re-exported with save_weights.
    generator = load_pretrained(
        build_model("rrdbnet", 4, **TINY_G), entry_run["dir"] / "checkpoints" / "last.ckpt"
    )
    assert torch.equal(generator.conv_first.weight, ckpt["state_dict"]["net.conv_first.weight"])
    exported = load_pretrained(
        build_model("rrdbnet", 4, **TINY_G), save_weights(generator, tmp_path / "g.safetensors")
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            exported.state_dict().values(), generator.state_dict().values(), strict=True
        )
    )


def test_missing_vgg_weights_stop_the_entry_point_cleanly(tmp_path):
    missing = tmp_path / "vgg" / "vgg19-dcbb9e9d.pth"
    overrides = [o for o in TINY_GAN if "random_init_for_tests" not in o]
    run = run_module(
        "medsr.train",
        *overrides,
        "trainer=cpu",
        f"model.lit.perceptual_opt.vgg_weights={missing}",
        run_dir=tmp_path / "run",
    )
    output = run.stdout + run.stderr
    assert run.returncode == 2, output[-3000:]
    assert str(missing) in output and "vgg19-dcbb9e9d.pth" in output and "Traceback" not in output


def test_resume_restores_g_d_optimizers_schedulers_and_step(entry_run, tmp_path):
    mid = next((entry_run["dir"] / "checkpoints").glob("step0000010_*.ckpt"))
    run = run_module(
        "medsr.train",
        *ENTRY,
        "trainer.max_steps=20",
        f"ckpt_path={mid}",
        "test_after_fit=false",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "from scratch" not in run.stderr  # resuming is not starting afresh
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    steps = [int(r["step"]) for r in rows if r.get("train/l_g_gan")]
    assert steps == list(range(10, 20))  # ten more iterations, counted on from 10
    resumed, reference = checkpoint(tmp_path, 20), checkpoint(entry_run["dir"], 20)
    assert resumed["global_step"] == 20
    assert [s["last_epoch"] for s in resumed["lr_schedulers"]] == [20, 20]
    # The milestone at 15 was crossed after resuming, by schedulers that counted on from 10.
    assert [s["_last_lr"] for s in resumed["lr_schedulers"]] == [[5e-5], [5e-5]]
    for opt in resumed["optimizer_states"]:  # Adam moments carried over, not restarted at 0
        assert all(int(s["step"]) == 20 for s in opt["state"].values())
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
