"""The training entry point end to end: configs compose, a short run trains, bad settings fail clearly."""

from __future__ import annotations

import csv
import json
import re

import pytest

from helpers import FAST_TRAIN, TINY_EDSR, compose_config, in_process_config, run_module
from medsr._cli import medsr_error
from medsr.errors import ConfigError, DataError
from medsr.evaluation.results import protocol_words
from medsr.train import train

MODELS = ["edsr_baseline", "edsr", "rcan", "rrdbnet"]
SUMMARY = re.compile(
    r"^(?P<task>\w+): (?P<model>\S+) x(?P<scale>\d) (?P<psnr>[\d.]+) dB vs bicubic (?P<base>[\d.]+) dB "
    r"\((?P<gain>[+-][\d.]+) dB\) on (?P<n>\d+) held-out images$",
    re.M,
)


def compose_train(*overrides: str):
    return compose_config("train", *overrides)


@pytest.mark.parametrize("model", MODELS)
def test_model_configs_compose_and_build(model):
    from medsr.models import build_model

    cfg = compose_train(f"model={model}", "scale=4")
    assert cfg.model.lit._target_ == "medsr.training.sr_module.SRModule"
    assert cfg.data.scale == 4  # the one top-level scale reaches the data
    net = build_model(cfg.model.arch, cfg.scale, **cfg.model.net)
    assert net.medsr_spec["arch"] == cfg.model.arch


def test_run_name_follows_basicsr_convention():
    cfg = compose_train("model=edsr", "scale=2", "trainer.max_steps=300000", "data.batch_size=16")
    assert cfg.run_name.startswith("EDSR_x2_f256b32_")
    assert cfg.run_name.endswith("_300k_B16")


def test_short_training_run(tmp_path):
    run = run_module(
        "medsr.train", *TINY_EDSR, *FAST_TRAIN, "data=samples", "scale=2", run_dir=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = SUMMARY.search(run.stdout)
    assert summary, run.stdout[-2000:]
    assert summary["task"] == "train" and summary["scale"] == "2" and summary["n"] == "3"
    assert float(summary["gain"]) == pytest.approx(
        float(summary["psnr"]) - float(summary["base"]), abs=0.011
    )
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "comparison.png").is_file()
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in results] == ["EDSR_f8b1", "Bicubic"]
    # The same protocol words as medsr.evaluate writes, so tables from both entry points merge;
    # the held-out scores are computed in float32 whatever the training precision.
    assert results[0]["protocol"] == protocol_words(
        2, 2, results[0]["protocol"].split("; ")[3], "32"
    )
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {
        "train/l_pix",
        "val/psnr_y",
        "val/ssim_y",
        "val/psnr_y_best",
        "perf/data_wait_frac",
    } <= logged


def test_quickstart_preset_on_short_schedule(tmp_path):
    run = run_module(
        "medsr.train",
        "experiment=quickstart",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "data.num_workers=0",
        "data.batch_size=4",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("quickstart: ")]
    assert len(lines) == 1, run.stdout[-2000:]
    assert SUMMARY.match(lines[0])
    assert SUMMARY.match(lines[0])["model"] == "EDSR_f32b4"
    assert (tmp_path / "comparison.png").is_file()


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["scale=5"], ConfigError, "scale=5 is not supported"),
        (["data=folder", "data.train_dirs=[does/not/exist]"], DataError, "does/not/exist"),
        (["model=rrdbnet", "scale=3", "model.net.num_block=1"], ConfigError, "scale=3"),
    ],
)
def test_bad_settings_fail_with_one_clear_message(tmp_path, overrides, error, message):
    cfg = in_process_config("train", *FAST_TRAIN, *overrides, run_dir=tmp_path)
    with pytest.raises(Exception) as raised:  # Hydra wraps errors raised while instantiating
        train(cfg, tmp_path)
    known = medsr_error(raised.value)
    assert isinstance(known, error) and message in str(known)


def test_a_user_error_exits_with_code_2_and_one_line(tmp_path):
    run = run_module("medsr.train", *FAST_TRAIN, "scale=5", run_dir=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    output = run.stderr + run.stdout
    assert "scale=5 is not supported" in output and "Traceback" not in output
