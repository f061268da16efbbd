"""Finding files of earlier runs: the checkpoint to resume from (``resume=auto``) and the weights
a preset starts from (``model.init_from: ${run_weights:<run name>}``).

Run folders are ``outputs/<task>/<run name>/<time>/`` (single runs) and
``multirun/<task>/<time>/<job>_<run name>/`` (sweeps), relative to the working directory, as
``conf/train.yaml`` names them. A run that was given a fixed ``hydra.run.dir`` is found when the
same ``hydra.run.dir`` is given again.
"""

from __future__ import annotations

import glob
import logging
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from medsr.errors import ConfigError

log = logging.getLogger(__name__)

LAST = Path("checkpoints") / "last.ckpt"


def run_folders(task: str, run_name: str, root: str | os.PathLike = ".") -> list[Path]:
    """Earlier run folders of the experiment ``run_name`` (single runs and sweep jobs)."""
    root, task, name = (glob.escape(str(s)) for s in (root, task, run_name))
    patterns = [
        os.path.join(root, "outputs", task, name, "*"),
        os.path.join(root, "multirun", task, "*", f"*_{name}"),
    ]
    return [Path(p) for pattern in patterns for p in glob.glob(pattern) if Path(p).is_dir()]


def readable_checkpoint(path: Path) -> bool:
    """A complete ``torch.save`` file: a zip whose central directory (written last) is intact."""
    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def newest(paths: Iterable[Path]) -> Path | None:
    """The most recently written of ``paths`` that exist and are complete checkpoints."""
    good = []
    for p in paths:
        if not p.is_file():
            continue
        if readable_checkpoint(p):
            good.append(p)
        else:
            log.warning("ignoring %s: not a complete checkpoint file", p)
    return max(good, key=lambda p: p.stat().st_mtime_ns) if good else None


def resume_checkpoint(
    resume: object, ckpt_path: object, out_dir: Path, task: str, run_name: str
) -> str | None:
    """The checkpoint ``trainer.fit`` resumes from.

    Args:
        resume: None/false (start afresh), ``auto`` (the newest ``checkpoints/last.ckpt`` of this
            run folder, else of earlier runs with the same ``run_name``; none = start afresh),
            or a run folder or checkpoint file.
        ckpt_path: an explicit checkpoint file (the Lightning name for the same thing).
        out_dir: this run's folder.
        task, run_name: identify earlier runs of the same experiment.
    """
    if ckpt_path and resume not in (None, False, "", "none"):
        raise ConfigError(f"set either ckpt_path={ckpt_path} or resume={resume}, not both")
    if ckpt_path:
        path = Path(str(ckpt_path))
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path={ckpt_path}: no such checkpoint file; give a file from <run>/checkpoints/ or use resume=auto"
            )
        return str(path)
    if resume in (None, False, "", "none"):
        return None
    if str(resume) == "auto":
        found = newest([out_dir / LAST]) or newest(d / LAST for d in run_folders(task, run_name))
        if found is None:
            log.info(
                "resume=auto: no checkpoint of %s found (this folder, outputs/%s/%s/*, multirun/%s/*/*_%s); "
                "starting a new run",
                run_name,
                task,
                run_name,
                task,
                run_name,
            )
            return None
        log.info("resume=auto: resuming from %s", found)
        return str(found)
    path = Path(str(resume))
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise ConfigError(
            f"resume={resume}: neither a checkpoint file nor a run folder with {LAST}; "
            "use resume=auto, a run folder or a checkpoint file"
        )
    return str(path)


def run_weights(
    run_name: str, suffix: str = "", task: str = "train", root: str | os.PathLike = "."
) -> str:
    """The exported weights (``<run folder>/<run name><suffix>.pth``) of the newest finished run
    ``run_name``; ``suffix="_net_d"``: its discriminator.

    Used by the fine-tuning presets: ``model.init_from: ${run_weights:EDSR_x2_f256b32_DF2K_300k_B16}``.
    """
    found = find_run_weights(run_name, suffix, task, root)
    if found is None:
        raise ConfigError(
            f"model.init_from: no finished run {run_name} found (looked for outputs/{task}/{run_name}/*/{run_name}{suffix}.pth "
            f"and multirun/{task}/*/*_{run_name}/{run_name}{suffix}.pth under {Path(root).resolve()}); train it first "
            f"(see its preset in conf/experiment/) or set model.init_from=<weights file or checkpoint>"
        )
    return found


def find_run_weights(
    run_name: str, suffix: str = "", task: str = "train", root: str | os.PathLike = "."
) -> str | None:
    """``run_weights``' file, or None when no finished run ``run_name`` is found."""
    files = [d / f"{run_name}{suffix}.pth" for d in run_folders(task, run_name, root)]
    files = [f for f in files if f.is_file()]
    return str(max(files, key=lambda p: p.stat().st_mtime_ns)) if files else None


def x2_run_weights(scale: int, run_name: str, root: str | os.PathLike = ".") -> str | None:
    """Where a x3/x4 run starts: the weights of the finished x2 run ``run_name``, as BasicSR and
    the official EDSR/RCAN codes start x3/x4 from x2. None (training from scratch, said in the
    log) at x2 or when no such run is found."""
    if int(scale) == 2:
        return None
    found = find_run_weights(run_name, root=root)
    if found is None:
        log.info(
            "no finished x2 run %s found: x%s trains from scratch (the references start x3/x4 "
            "from x2: train it first with scale=2, or set model.init_from=<file>)",
            run_name,
            scale,
        )
    else:
        log.info("x%s starts from the x2 run's weights %s", scale, found)
    return found
