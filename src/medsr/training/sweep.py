"""Sweep bookkeeping: every training job leaves ``job_result.json`` in its folder; at the end of a
multirun the Hydra callback :class:`SweepSummary` prints one line per job and writes
``sweep_summary.csv`` into the sweep folder. Reading the job folders (rather than collecting
results in memory) also works with launchers that run jobs elsewhere (submitit / SLURM)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from medsr.files import atomic_write_text

log = logging.getLogger(__name__)

RESULT_FILE = "job_result.json"
FIELDS = ("job", "run_name", "status", "metric", "value", "error", "folder")


def write_job_result(out_dir: Path, **fields: Any) -> Path:
    """``<out_dir>/job_result.json`` with ``run_name``, ``status`` (ok / failed), ``metric``,
    ``value`` and ``error``."""
    value = fields.get("value")
    if isinstance(value, float) and not math.isfinite(value):
        fields["value"] = None  # JSON has no NaN
    return atomic_write_text(Path(out_dir) / RESULT_FILE, json.dumps(fields, indent=2) + "\n")


def read_job_results(sweep_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(
        Path(sweep_dir).glob(f"*/{RESULT_FILE}"), key=lambda p: _job_number(p.parent.name)
    ):
        row = json.loads(path.read_text())
        row["job"] = path.parent.name.split("_", 1)[0]
        row["folder"] = str(path.parent)
        rows.append(row)
    return rows


def _job_number(name: str) -> tuple[int, str]:
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (1 << 30, name)


def _csv(rows: list[dict]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks``): a table of the sweep's jobs when the multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_job_results(sweep_dir)
        if not rows:
            return
        atomic_write_text(sweep_dir / "sweep_summary.csv", _csv(rows))
        lines = [f"sweep {sweep_dir}: {len(rows)} jobs"]
        for r in rows:
            if r["status"] == "ok":
                value = "nan" if r.get("value") is None else f"{r['value']:.4f}"
                lines.append(f"  #{r['job']} {r['run_name']}: {r['metric']} = {value}")
            else:
                lines.append(f"  #{r['job']} {r['run_name']}: FAILED: {r.get('error')}")
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            lines.append(
                f"  {len(failed)} of {len(rows)} jobs failed; their logs: <job folder>/train.log"
            )
        log.log(logging.WARNING if failed else logging.INFO, "\n".join(lines))
