"""Network interpolation (ESRGAN sec. 3.4): the blend formula, its checks, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import medsr
from helpers import compose_config, official_esrgan_file, run_module
from medsr.errors import ConfigError, WeightsError
from medsr.interpolate import interpolate, interpolate_weights
from medsr.models import build_model, load_pretrained, read_spec, save_weights

CONF_DIR = str(Path(medsr.__file__).parent / "conf")
TINY_RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def tiny_rrdbnet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("rrdbnet", 4, **TINY_RRDB)


def test_blend_formula_and_exact_endpoints():
    a = {"w": torch.randn(4, 3), "b": torch.randn(4).half()}
    b = {"w": torch.randn(4, 3), "b": torch.randn(4).half()}
    assert torch.equal(interpolate_weights(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate_weights(a, b, 1.0)["w"], b["w"])
    assert torch.equal(interpolate_weights(a, b, 1.0)["b"], b["b"])
    mid = interpolate_weights(a, b, 0.8)
    torch.testing.assert_close(mid["w"], 0.2 * a["w"] + 0.8 * b["w"])
    assert mid["b"].dtype == torch.float16  # dtypes kept
    torch.testing.assert_close(mid["b"], (0.2 * a["b"].float() + 0.8 * b["b"].float()).half())
    assert a["w"] is not mid["w"] and not torch.equal(a["w"], mid["w"])  # inputs untouched


def test_non_float_entries_must_agree():
    a = {"w": torch.zeros(2), "bn.num_batches_tracked": torch.tensor(5)}
    same = interpolate_weights(
        a, {"w": torch.ones(2), "bn.num_batches_tracked": torch.tensor(5)}, 0.5
    )
    assert same["bn.num_batches_tracked"].item() == 5
    with pytest.raises(WeightsError, match="num_batches_tracked"):
        interpolate_weights(a, {"w": torch.ones(2), "bn.num_batches_tracked": torch.tensor(6)}, 0.5)


@pytest.mark.parametrize(
    ("b", "alpha", "error", "pattern"),
    [
        ({"w": torch.zeros(2), "extra": torch.zeros(1)}, 0.5, WeightsError, "only in b.*extra"),
        ({"w": torch.zeros(3)}, 0.5, WeightsError, r"at w: a \(2,\) vs b \(3,\)"),
        ({"w": torch.zeros(2)}, 1.5, ConfigError, r"alpha=1.5 is outside \[0, 1\]"),
        ({"w": torch.zeros(2)}, -0.1, ConfigError, "alpha=-0.1"),
    ],
)
def test_mismatches_are_clear_errors(b, alpha, error, pattern):
    with pytest.raises(error, match=pattern):
        interpolate_weights({"w": torch.zeros(2)}, b, alpha)


def test_cli_blends_two_medsr_files(tmp_path):
    net_a, net_b = tiny_rrdbnet(0), tiny_rrdbnet(1)
    save_weights(net_a, tmp_path / "psnr.pth")
    save_weights(net_b, tmp_path / "gan.safetensors")
    out = tmp_path / "out" / "interp.safetensors"
    run = run_module(
        "medsr.interpolate",
        f"a={tmp_path / 'psnr.pth'}",
        f"b={tmp_path / 'gan.safetensors'}",
        "alpha=0.8",
        f"out={out}",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == str(out)
    assert read_spec(out) == net_a.medsr_spec  # the result rebuilds itself for medsr.predict
    blended = load_pretrained(build_model("rrdbnet", 4, **TINY_RRDB), out).state_dict()
    for key, value in blended.items():
        torch.testing.assert_close(
            value, 0.2 * net_a.state_dict()[key] + 0.8 * net_b.state_dict()[key]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gan.safetensors",
        "out",
        "psnr.pth",
    ]  # no .hydra, no log


def compose_interpolate(*overrides: str):
    return compose_config("interpolate", *overrides)


def test_official_files_need_the_network_named(tmp_path):
    a = official_esrgan_file(tiny_rrdbnet(0), tmp_path / "RRDB_PSNR_x4.pth")
    b = official_esrgan_file(tiny_rrdbnet(1), tmp_path / "RRDB_ESRGAN_x4.pth")
    cfg = compose_interpolate(f"a={a}", f"b={b}", f"out={tmp_path / 'o.pth'}")
    with pytest.raises(ConfigError, match="model=rrdbnet scale=4"):
        interpolate(cfg)
    net = [f"model.net.{k}={v}" for k, v in TINY_RRDB.items()]
    cfg = compose_interpolate(
        f"a={a}",
        f"b={b}",
        "alpha=0.5",
        f"out={tmp_path / 'o.pth'}",
        "model=rrdbnet",
        "scale=4",
        *net,
    )
    interpolate(cfg)
    blended = load_pretrained(
        build_model("rrdbnet", 4, **TINY_RRDB), tmp_path / "o.pth"
    ).state_dict()
    ref_a, ref_b = tiny_rrdbnet(0).state_dict(), tiny_rrdbnet(1).state_dict()
    torch.testing.assert_close(
        blended["body.0.rdb2.conv3.weight"],
        0.5 * (ref_a["body.0.rdb2.conv3.weight"] + ref_b["body.0.rdb2.conv3.weight"]),
    )


def test_files_of_different_networks_are_refused(tmp_path):
    save_weights(tiny_rrdbnet(0), tmp_path / "a.pth")
    save_weights(
        build_model("rrdbnet", 4, num_feat=16, num_block=1, num_grow_ch=4), tmp_path / "b.pth"
    )
    cfg = compose_interpolate(
        f"a={tmp_path / 'a.pth'}", f"b={tmp_path / 'b.pth'}", f"out={tmp_path / 'o.pth'}"
    )
    with pytest.raises(ConfigError, match="different networks"):
        interpolate(cfg)
    assert not (tmp_path / "o.pth").exists()
