"""A Hydra multirun through the real entry point (RRDBNet x2, x3, x4: x3 cannot exist) and what it
leaves: one folder and one W&B run per job, grouped by sweep; the failed job reported while the
sweep goes on; each job's metric; and the contents of the offline W&B runs (losses, learning
rate, validation scores and their best values, validation pictures, results table, config)."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow

TINY_RRDB = [
    "model=rrdbnet",
    "model.net.num_feat=8",
    "model.net.num_block=1",
    "model.net.num_grow_ch=4",
]
RUN = "RRDBNet_x{}_f8b1g4_folder_4_B2"


def read_wandb_records(path: Path) -> list:
    """The protobuf records of an offline ``run-<id>.wandb`` file (LevelDB-style log: 32 KiB
    blocks of chunks with a 7-byte header: CRC32, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    block, pos, parts, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            parts = payload
        elif kind in (3, 4):
            parts += payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def wandb_run(job_dir: Path) -> dict:
    """Run name, group, tags, config, history rows, summary metrics and files of the job's run."""
    (run_file,) = job_dir.glob("wandb/offline-run-*/run-*.wandb")
    out = {"dir": run_file.parent, "config": {}, "history": [], "summary_max": set(), "files": []}
    for record in read_wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(
                name=record.run.display_name, group=record.run.run_group, tags=list(record.run.tags)
            )
        elif kind == "config":
            out["config"].update(
                {item.key: json.loads(item.value_json) for item in record.config.update}
            )
        elif kind == "history":
            out["history"].append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
        elif kind == "metric" and record.metric.summary.max:
            out["summary_max"].add(record.metric.name)
        elif kind == "files":
            out["files"] += [f.path for f in record.files.files]
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, samples_dir):
    root = tmp_path_factory.mktemp("sweep")
    val = root / "val"
    val.mkdir()
    Image.open(samples_dir / "val" / "chelsea.png").crop((100, 50, 196, 146)).save(
        val / "chelsea.png"
    )
    Image.open(samples_dir / "val" / "microaneurysms.png").crop((0, 0, 96, 96)).save(
        val / "microaneurysms.png"
    )
    args = [
        *TINY_RRDB,
        "scale=2,3,4",
        "trainer=cpu",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "data=folder",
        f"data.train_dirs=[{samples_dir / 'train'}]",
        f"data.val_dirs=[{val}]",
        "data.patch_size=48",
        "data.batch_size=2",
        "data.num_workers=0",
        "logger=[csv,wandb]",
        "callbacks.val_images.every_n_validations=2",
        "comparison_figure=false",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "medsr.train", "-m", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (sweep_dir,) = (root / "multirun" / "train").iterdir()
    return {"run": run, "dir": sweep_dir, "output": run.stdout + run.stderr}


def test_one_folder_per_job_and_the_sweep_goes_on_past_a_failed_job(sweep):
    assert sweep["run"].returncode == 0, sweep["output"][-3000:]
    jobs = sorted(p.name for p in sweep["dir"].iterdir() if p.is_dir())
    assert jobs == [f"{n}_{RUN.format(s)}" for n, s in enumerate((2, 3, 4))]
    rows = list(csv.DictReader(open(sweep["dir"] / "sweep_summary.csv")))
    assert [(r["job"], r["run_name"], r["status"]) for r in rows] == [
        ("0", RUN.format(2), "ok"),
        ("1", RUN.format(3), "failed"),
        ("2", RUN.format(4), "ok"),
    ]
    assert "scale=3 is not supported by rrdbnet" in rows[1]["error"]
    assert (
        "1 of 3 jobs failed" in sweep["output"]
        and "FAILED: scale=3 is not supported" in sweep["output"]
    )
    assert "Traceback" not in sweep["output"]
    failed = sweep["dir"] / f"1_{RUN.format(3)}"
    assert "scale=3 is not supported by rrdbnet" in (failed / "train.log").read_text()
    assert not (failed / "checkpoints").exists() and not (failed / "wandb").exists()


@pytest.mark.parametrize("scale", [2, 4])
def test_each_job_returns_its_best_validation_psnr_and_leaves_its_results(sweep, scale):
    job = sweep["dir"] / f"{2 if scale == 4 else 0}_{RUN.format(scale)}"
    result = json.loads((job / "job_result.json").read_text())
    rows = list(csv.DictReader(open(job / "csv" / "metrics.csv")))
    best = max(float(r["val/psnr_y"]) for r in rows if r.get("val/psnr_y"))
    assert result["status"] == "ok" and result["metric"] == "val/psnr_y_best"
    assert result["value"] == pytest.approx(best, abs=1e-5)
    assert (job / "checkpoints" / "last.ckpt").is_file() and (
        job / f"{RUN.format(scale)}.pth"
    ).is_file()
    methods = [r["method"] for r in json.loads((job / "results.json").read_text())]
    assert methods == ["RRDBNet_f8b1g4", "Bicubic"]


def test_one_wandb_run_per_job_named_grouped_and_tagged(sweep):
    runs = {s: wandb_run(sweep["dir"] / f"{n}_{RUN.format(s)}") for n, s in ((0, 2), (2, 4))}
    for scale, run in runs.items():
        assert run["name"] == RUN.format(scale)
        assert run["tags"] == ["RRDBNet", f"x{scale}", "f8b1g4", "folder", "4", "B2"]
    assert runs[2]["group"] == runs[4]["group"] == f"train_sweep_{sweep['dir'].name}"


def test_wandb_run_holds_scores_losses_lr_pictures_table_and_config(sweep):
    job = sweep["dir"] / f"0_{RUN.format(2)}"
    run = wandb_run(job)
    logged = {key for row in run["history"] for key in row}
    assert {
        "train/l_pix",
        "train/lr",
        "val/psnr_y",
        "val/ssim_y",
        "val/psnr_y_best",
        "test/psnr_y",
    } <= logged
    assert {"val/psnr_y", "val/ssim_y", "val/psnr_y_best"} <= run[
        "summary_max"
    ]  # best values in the run summary
    psnr = [
        (row["trainer/global_step"], row["val/psnr_y"])
        for row in run["history"]
        if "val/psnr_y" in row
    ]
    csv_rows = list(csv.DictReader(open(job / "csv" / "metrics.csv")))
    assert [v for _, v in psnr] == pytest.approx(
        [float(r["val/psnr_y"]) for r in csv_rows if r.get("val/psnr_y")]
    )
    # Pictures every 2nd validation (validations at steps 2 and 4): once, two images.
    pictures = [row for row in run["history"] if "val/images/filenames" in row]
    assert [row["trainer/global_step"] for row in pictures] == [2]
    assert pictures[0]["val/images/captions"] == ["chelsea", "microaneurysms"]
    for name in pictures[0]["val/images/filenames"]:
        width, height = Image.open(run["dir"] / "files" / name).size
        assert width > 3 * 96 and height > 96  # LR | SR | HR crops side by side
    # The results table: the same rows as results.json.
    (table_file,) = (run["dir"] / "files" / "media" / "table" / "test").glob("results_*.table.json")
    table = json.loads(table_file.read_text())
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["data"]]
    expected = json.loads((job / "results.json").read_text())
    assert [(r["method"], r["dataset"], r["n_images"]) for r in rows] == [
        (r["method"], r["dataset"], r["n_images"]) for r in expected
    ]
    assert [r["psnr"] for r in rows] == pytest.approx([r["psnr"] for r in expected])
    # The resolved config.
    config = run["config"]
    assert config["run_name"] == RUN.format(2) and config["scale"] == 2
    assert config["model"]["net"] == {
        "num_feat": 8,
        "num_block": 1,
        "num_grow_ch": 4,
        "num_in_ch": 3,
        "num_out_ch": 3,
    }
    assert config["data"]["patch_size"] == 48 and "${" not in json.dumps(config)


def test_any_exception_fails_only_its_job(tmp_path):
    """Not only medsr's own errors: an unexpected exception is logged with its traceback in the
    job's log, the job returns NaN, and the next job still runs."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    run = subprocess.run(
        [sys.executable, "-m", "medsr.train", "-m", "+trainer.no_such_argument=1,2", "trainer=cpu"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    (sweep_dir,) = (tmp_path / "multirun" / "train").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "sweep_summary.csv")))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "failed"), ("1", "failed")]
    assert all("no_such_argument" in r["error"] for r in rows)
    logs = [(sweep_dir / f"{n}_{rows[n]['run_name']}" / "train.log").read_text() for n in (0, 1)]
    assert all("Traceback" in log and "no_such_argument" in log for log in logs)
    assert "2 of 2 jobs failed" in output
