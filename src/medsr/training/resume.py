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
from collections.abc import Iterable, Mapping
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from torch.nn import Module

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


def run_checkpoint(run: Path) -> Path | None:
    """The checkpoint run folder ``run`` continues from: ``checkpoints/last.ckpt``, or, when that
    is incomplete (the run was killed while writing it) or absent, the newest complete
    ``checkpoints/*.ckpt`` (the step files), saying so."""
    last = run / LAST
    if last.is_file() and readable_checkpoint(last):
        return last
    others = [
        p
        for p in (run / LAST.parent).glob("*.ckpt")
        if p.name != LAST.name and not p.name.startswith(".") and readable_checkpoint(p)
    ]
    best = max(others, key=lambda p: p.stat().st_mtime_ns) if others else None
    if last.is_file():
        log.warning(
            "%s is not a complete checkpoint (the run was stopped while writing it?); %s",
            last,
            f"continuing from the newest complete checkpoint {best.name} instead"
            if best
            else "no other complete checkpoint in that folder",
        )
    return best


def _newest_run(runs: Iterable[Path]) -> tuple[Path, Path] | None:
    """(run folder, checkpoint) of the run whose resumable checkpoint was written last."""
    found = [(run, ckpt) for run in runs if (ckpt := run_checkpoint(run)) is not None]
    return max(found, key=lambda rc: rc[1].stat().st_mtime_ns) if found else None


def complete_file(path: Path, setting: str) -> str:
    """``path`` if it is a complete checkpoint file; else the weights reader's one-line error
    (the one ``medsr.predict`` gives for the same file)."""
    if not path.is_file():
        raise ConfigError(
            f"{setting}={path}: no such checkpoint file; give a file from <run>/checkpoints/ or "
            "use resume=auto"
        )
    if not readable_checkpoint(path):
        from medsr.models.weights.files import load_file

        load_file(path)  # raises the reader's WeightsError (truncated, refused, not weights)
        raise ConfigError(
            f"{setting}={path} is not a Lightning checkpoint (<run>/checkpoints/*.ckpt); to start "
            "from weights, use model.init_from=<file>"
        )
    return str(path)


def resume_checkpoint(
    resume: object, ckpt_path: object, out_dir: Path, task: str, run_name: str
) -> str | None:
    """The checkpoint ``trainer.fit`` resumes from.

    Args:
        resume: None/false (start afresh), ``auto`` (this run folder's checkpoint, else the
            newest earlier run with the same ``run_name``; none = start afresh), or a run
            folder or checkpoint file. A run folder whose ``last.ckpt`` is incomplete continues
            from its newest complete step checkpoint.
        ckpt_path: an explicit checkpoint file (the Lightning name for the same thing).
        out_dir: this run's folder.
        task, run_name: identify earlier runs of the same experiment.
    """
    if ckpt_path and resume not in (None, False, "", "none"):
        raise ConfigError(f"set either ckpt_path={ckpt_path} or resume={resume}, not both")
    if ckpt_path:
        return complete_file(Path(str(ckpt_path)), "ckpt_path")
    if resume in (None, False, "", "none"):
        return None
    if str(resume) == "auto":
        here = run_checkpoint(out_dir)
        if here is not None:
            log.info("resume=auto: resuming from %s (this run folder)", here)
            return str(here)
        earlier = _newest_run(d for d in run_folders(task, run_name) if d != out_dir)
        if earlier is None:
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
        run, found = earlier
        log.info(
            "resume=auto: resuming from %s, continuing the run in %s; this run's files go to %s",
            found.relative_to(run),
            run.absolute(),
            out_dir,
        )
        return str(found)
    path = Path(str(resume))
    if path.is_dir():
        found = run_checkpoint(path)
        if found is None:
            raise ConfigError(
                f"resume={resume}: this run folder has no complete checkpoint in {LAST.parent}/; "
                "use resume=auto, another run folder or a checkpoint file"
            )
        log.info(
            "resume: resuming from %s, continuing the run in %s", found.relative_to(path), path
        )
        return str(found)
    return complete_file(path, "resume")


def check_resumable(module: Module, path: str, setting: str, built: str) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit the run's modules (another
    architecture, size or scale, a GAN's checkpoint for a PSNR run, another discriminator size)
    before Lightning fails on it with a long traceback.

    Args:
        module: the LightningModule this run built.
        path: the checkpoint to continue from.
        setting: ``resume`` or ``ckpt_path`` (named in the message).
        built: what this run builds, in words (e.g. ``edsr x2 {num_feat: 64}``).
    """
    from medsr.models.weights.files import load_file, show

    ckpt, _ = load_file(Path(path))
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise ConfigError(
            f"{setting}={path} is not a Lightning checkpoint (<run>/checkpoints/*.ckpt); to start "
            "from weights, use model.init_from=<file>"
        )
    module.on_load_checkpoint(ckpt)  # as Lightning does first (ESRGAN adds the frozen VGG back)
    state = ckpt["state_dict"]
    expected = module.state_dict()
    misfits = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    misfits += [k for k in state if k not in expected]
    if not misfits:
        return
    hparams = ckpt.get("hyper_parameters") or {}
    spec = hparams.get("model_spec") if isinstance(hparams, Mapping) else None
    saved = (
        f"{spec.get('arch')} x{spec.get('scale')} {dict(spec.get('net') or {})}"
        if isinstance(spec, Mapping)
        else "different"
    )
    raise ConfigError(
        f"{setting}: {path} was saved by a run of {saved} but this run builds {built} "
        f"({len(misfits)} weights do not fit, e.g. {show(misfits[:3])}); continue it with the "
        "settings it was trained with (model=, model.net.*, scale=, data.patch_size for a GAN), "
        "or start a new run without resume/ckpt_path"
    )


def keep_earlier_metrics(out_dir: Path) -> list[Path]:
    """Lightning's CSVLogger deletes the ``metrics.csv`` it finds in its folder: before a run is
    continued in place (or a folder reused), the earlier part is renamed ``metrics_part<k>.csv``.
    Returns the new names."""
    kept = []
    if rank_zero_only.rank != 0:  # DDP: one process renames
        return kept
    for metrics in Path(out_dir).glob("*/metrics.csv"):
        k = 1
        while (target := metrics.with_name(f"metrics_part{k}.csv")).exists():
            k += 1
        metrics.rename(target)
        kept.append(target)
        log.info("the earlier metrics of this run folder are kept as %s", target)
    return kept


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
