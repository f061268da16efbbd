"""The prepared GPU check cannot rot: its CPU dry run runs every part and writes its report,
and a part that overruns its time box is reported as skipped instead of hanging the check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
COLUMNS = "| model | network | batch | precision | channels_last + compile | medsr it/s | baseline it/s | medsr / baseline |"


def run(out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
def test_dry_run_measures_every_part_and_writes_the_report(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert COLUMNS in markdown and COLUMNS in proc.stdout  # the table is printed too
    parts = result["parts"]
    assert list(parts) == ["imresize", "predict", "pytest", "train"]
    rows = [r for p in parts.values() for r in p["rows"]]
    assert [r["id"] for r in rows if r["status"] != "ok"] == []

    train = {r["id"]: r for r in parts["train"]["rows"]}
    models = {r["model"] for r in train.values()}
    assert {"edsr", "rcan", "rrdbnet", "esrgan"} <= models
    for model in models:  # every model trains, in medsr's step
        assert train[f"train/{model}/32-true/eager"]["it_s"] > 0
    for kind in ("eager", "baseline", "compiled"):
        assert train[f"train/edsr/32-true/{kind}"]["it_s"] > 0
    assert {r["precision"] for r in train.values()} == {"32-true", "bf16-mixed", "16-mixed"}
    assert train["train/esrgan/32-true/baseline"]["it_s"] > 0  # the plain GAN loop runs too
    ratio_row = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| edsr |") and "| 32-true | off |" in line
    )
    ratio = float(ratio_row.split("|")[8])
    assert ratio == pytest.approx(
        train["train/edsr/32-true/eager"]["it_s"] / train["train/edsr/32-true/baseline"]["it_s"],
        rel=0.01,
    )

    assert [r["max_abs_diff"] for r in parts["imresize"]["rows"]] == [
        0.0,
        0.0,
        0.0,
    ]  # CPU vs CPU here
    predict = parts["predict"]["rows"]
    assert {(r["model"], r["tile"]) for r in predict} == {
        ("edsr", 0),
        ("edsr", 24),
        ("rrdbnet", 0),
        ("rrdbnet", 24),
    }
    assert all(r["mp_s"] > 0 and r["tile_used"] == r["tile"] for r in predict)
    assert re.search(r"\d+ (skipped|passed|deselected)", parts["pytest"]["rows"][0]["result"])


def test_a_part_past_its_time_box_is_reported_as_skipped(tmp_path):
    start = time.time()
    proc = run(tmp_path, "--parts", "predict", "--box", "predict=0.5", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["parts"]["predict"]["rows"]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"skipped"}
    assert all("time box" in r["note"] for r in rows)
    assert "skipped: " in (tmp_path / "gpu_check.md").read_text()
    assert time.time() - start < 60  # the child was stopped, not waited for
