"""The bad-input catalogue: what a new user gets wrong, through the real entry points.

Every case runs ``python -m medsr.<verb> <overrides>`` in-process (``entry_points.call_main``)
and asserts: exit code 2; exactly one ERROR line from medsr, one line long, naming the file or
setting (and, where it matters, the fix); no ``Traceback`` anywhere in the output; and no file
left under a final name that is not complete in the folders the run writes.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from entry_points import call_main, incomplete_files, unprivileged
from medsr.data.image_io import read_image, write_image
from medsr.models import build_model, save_weights

TINY = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]
QUICK = ["debug=fast", "scale=2", "test_after_fit=false", "comparison_figure=false"]
FAST = [*QUICK, *TINY]


class Evil:
    """Any object besides tensors and containers: the weights-only unpickler refuses it."""


def _truncate(path: Path, target: Path) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` RGB pixels, holding 1 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(1000))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def w(tmp_path_factory, samples_dir) -> dict[str, str]:
    """The inputs of every case (real pixels from the shipped samples), made once."""
    root = tmp_path_factory.mktemp("inputs")
    photo = read_image(samples_dir / "val" / "chelsea.png")
    camera = read_image(samples_dir / "train" / "camera.png")
    good = root / "good"
    write_image(good / "a.png", photo[:64, :64])
    write_image(good / "b.png", camera[100:164, 100:164])
    val = root / "val"
    write_image(val / "v.png", photo[64:112, 64:112])
    tiny_val = root / "tiny_val"
    write_image(tiny_val / "speck.png", photo[:12, :12])
    # A truncated PNG whose header is intact: it passes the header check and fails on decode.
    corrupt = root / "corrupt"
    shutil.copytree(good, corrupt)
    _truncate(good / "a.png", corrupt / "broken.png")
    small = root / "small"
    shutil.copytree(good, small)
    write_image(small / "thumb.png", photo[:16, :16])
    # A PNG header that claims 100000x100000 pixels in a few bytes (a decompression bomb's lie).
    liar = root / "liar"
    shutil.copytree(good, liar)
    (liar / "huge.png").write_bytes(_png_claiming(100000, 100000))
    # FOV masks: one of the wrong size, one missing.
    masks = root / "masks"
    write_image(masks / "a_mask.png", np.full((64, 64, 1), 255, np.uint8))
    write_image(masks / "b_mask.png", np.full((32, 32, 1), 255, np.uint8))
    write_image(masks / "v_mask.png", np.full((48, 48, 1), 255, np.uint8))
    no_masks = root / "no_masks"
    write_image(no_masks / "a_mask.png", np.full((64, 64, 1), 255, np.uint8))
    write_image(no_masks / "v_mask.png", np.full((48, 48, 1), 255, np.uint8))
    # Weights.
    torch.manual_seed(0)
    edsr = build_model("edsr", 2, num_feat=8, num_block=1)
    weights = save_weights(edsr, root / "edsr_x2.safetensors")
    plain = root / "edsr_x2_plain.pth"
    torch.save(edsr.state_dict(), plain)
    truncated = _truncate(plain, root / "truncated.pth")
    refused = root / "refused.pth"
    torch.save({"params": edsr.state_dict(), "extra": Evil()}, refused)
    rcan = build_model("rcan", 2, num_feat=8, num_group=1, num_block=1, squeeze_factor=4)
    spec = rcan.medsr_spec
    rcan_ckpt = root / "rcan.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in rcan.state_dict().items()},
            "pytorch-lightning_version": "2.6.6",
            "hyper_parameters": {"model_spec": spec},
        },
        rcan_ckpt,
    )
    truncated_ckpt = _truncate(rcan_ckpt, root / "truncated.ckpt")
    messidor = root / "messidor" / "IMAGES"
    messidor.mkdir(parents=True)
    for name in ("20051019_38557_0100_PP", "20051020_43808_0100_PP", "20051020_44261_0100_PP"):
        shutil.copy(good / "a.png", messidor / f"{name}.png")
    empty_run = root / "empty_run"
    (empty_run / "checkpoints").mkdir(parents=True)
    return {
        k: str(v)
        for k, v in dict(
            good=good,
            val=val,
            tiny_val=tiny_val,
            corrupt=corrupt,
            small=small,
            liar=liar,
            masks=masks,
            no_masks=no_masks,
            weights=weights,
            plain=plain,
            truncated=truncated,
            refused=refused,
            rcan_ckpt=rcan_ckpt,
            truncated_ckpt=truncated_ckpt,
            empty_run=empty_run,
            messidor=messidor.parent,
            missing=root / "does_not_exist",
            blocker=good / "a.png",
            empty_torch_home=root / "torch_home",
        ).items()
    }


@dataclass
class Case:
    id: str
    verb: str
    overrides: list[str]
    expect: list[str]  # all in the one error line
    env: dict[str, str | None] = field(default_factory=dict)
    forbid: list[str] = field(default_factory=list)  # wrong advice that must not appear


def folder_data(train: str, val: str = "{val}", **extra: str) -> list[str]:
    items = ["data=folder", f"data.train_dirs=[{train}]", f"data.val_dirs=[{val}]"]
    return items + [f"data.{k}={v}" for k, v in extra.items()]


T, E, P = "train", "evaluate", "predict"
PREDICT = ["input={good}", "output={out}/sr", "progress=false"]
EVAL = ["progress=false", "scale=2", *folder_data("{good}")]
CASES = [
    # -- training: settings ---------------------------------------------------------------------
    Case("scale-5", T, [*FAST, "scale=5"], ["scale=5 is not supported"]),
    Case("bicubic-model", T, [*QUICK, "model=bicubic"], ["model=bicubic", "medsr.evaluate"]),
    Case("zero-steps", T, [*FAST, "trainer.max_steps=0"], ["trainer.max_steps=0"]),
    Case("negative-steps", T, [*FAST, "trainer.max_steps=-5"], ["trainer.max_steps=-5"]),
    Case("zero-epochs", T, [*FAST, "trainer.max_epochs=0"], ["trainer.max_epochs=0"]),
    Case("crop-border", T, [*FAST, "model.lit.crop_border=-1"], ["model.lit.crop_border=-1"]),
    Case("patch-size", T, [*FAST, "data.patch_size=33"], ["data.patch_size=33", "scale=2"]),
    Case("rrdbnet-x3", T, [*QUICK, "model=rrdbnet", "scale=3"], ["scale=3", "rrdbnet"]),
    Case(
        "progress-every",
        T,
        [*FAST, "callbacks.progress.every_n_steps=-1"],
        ["callbacks.progress.every_n_steps=-1"],
    ),
    # -- training: data -------------------------------------------------------------------------
    Case("train-dir-missing", T, [*FAST, *folder_data("{missing}")], ["{missing}"]),
    Case(
        "corrupt-image-worker",  # decoded in a DataLoader worker, which wraps the error
        T,
        [*FAST, *folder_data("{corrupt}", num_workers=1)],
        ["broken.png", "data.skip_bad=true"],
    ),
    Case("too-small", T, [*FAST, *folder_data("{small}")], ["thumb.png", "data.patch_size"]),
    Case(
        "impossible-header",
        T,
        [*FAST, *folder_data("{liar}")],
        ["huge.png", "more than its"],
        forbid=["MEDSR_MAX_IMAGE_PIXELS"],
    ),
    Case(
        "above-pixel-limit",
        T,
        [*FAST, *folder_data("{good}")],
        ["a.png", "MEDSR_MAX_IMAGE_PIXELS=4096"],
        env={"MEDSR_MAX_IMAGE_PIXELS": "3000"},
        forbid=["corrupt"],
    ),
    Case(
        "val-too-small-for-ssim",
        T,
        [*FAST, *folder_data("{good}", "{tiny_val}")],
        ["speck.png", "model.lit.crop_border"],
    ),
    Case(
        "fov-mask-size",
        T,
        [*FAST, *folder_data("{good}", fov="true", mask_dir="{masks}")],
        ["b_mask.png", "data.mask_dir=computed"],
        forbid=["mask_dir=null"],
    ),
    Case(
        "fov-mask-missing",
        T,
        [*FAST, *folder_data("{good}", fov="true", mask_dir="{no_masks}")],
        ["b.png", "data.mask_dir=computed"],
        forbid=["mask_dir=null"],
    ),
    Case(
        "split-file-unwritable",
        T,
        [*FAST, "data=messidor", "data.root={messidor}", "data.n_train=1", "data.n_val=1"]
        + ["data.n_test=1", "data.split_file={blocker}/split.csv"],
        ["split.csv", "data.split_file="],
    ),
    Case(
        "cache-dir-unwritable",
        T,
        [*FAST, *folder_data("{good}", cache="true", cache_dir="{blocker}/cache")],
        ["{blocker}", "data.cache_dir=", "data.cache=false"],
    ),
    Case(
        "esrgan-messidor-asks-for-data-root",  # the design card's own command
        T,
        ["model=esrgan", "data=messidor", "data.root={missing}"],
        ["data.root"],
        forbid=["discriminator", "VGG"],
    ),
    Case(
        "esrgan-vgg-missing",
        T,
        ["model=esrgan", "debug=fast", "scale=2", *folder_data("{good}")],
        ["vgg19-dcbb9e9d.pth", "model.lit.perceptual_opt.vgg_weights"],
        env={"TORCH_HOME": "{empty_torch_home}"},
    ),
    # -- training: weights and checkpoints --------------------------------------------------------
    Case("init-missing", T, [*FAST, "model.init_from={missing}"], ["{missing}", "not found"]),
    Case("init-truncated", T, [*FAST, "model.init_from={truncated}"], ["truncated.pth"]),
    Case("init-refused", T, [*FAST, "model.init_from={refused}"], ["refused.pth", "refused"]),
    Case("ckpt-missing", T, [*FAST, "ckpt_path={missing}"], ["ckpt_path=", "{missing}"]),
    Case("ckpt-truncated", T, [*FAST, "ckpt_path={truncated_ckpt}"], ["truncated.ckpt"]),
    Case(
        "ckpt-other-architecture",
        T,
        [*FAST, "ckpt_path={rcan_ckpt}"],
        ["ckpt_path", "rcan.ckpt", "rcan x2", "edsr x2"],
    ),
    Case(
        "resume-other-architecture",
        T,
        [*FAST, "resume={rcan_ckpt}"],
        ["resume", "rcan.ckpt", "rcan x2"],
    ),
    Case("resume-weights-file", T, [*FAST, "resume={plain}"], ["resume=", "model.init_from"]),
    Case("resume-empty-run", T, [*FAST, "resume={empty_run}"], ["resume={empty_run}"]),
    Case("resume-and-ckpt", T, [*FAST, "resume=auto", "ckpt_path={plain}"], ["not both"]),
    Case(
        "wandb-online-without-key",
        T,
        [*FAST, *folder_data("{good}"), "logger=wandb"],
        ["WANDB_MODE=online", "wandb login", "WANDB_MODE=offline"],
        env={"WANDB_MODE": "online", "WANDB_API_KEY": None, "NETRC": "{missing}"},
    ),
    # -- evaluate --------------------------------------------------------------------------------
    Case("eval-crop-border", E, [*EVAL, "model=bicubic", "crop_border=-1"], ["crop_border=-1"]),
    Case("eval-tile", E, [*EVAL, "model=bicubic", "tile=abc"], ["tile='abc'"]),
    Case("eval-overlap", E, [*EVAL, "model=bicubic", "tile_overlap=1.5"], ["tile_overlap=1.5"]),
    Case("eval-ckpts", E, [*EVAL, "ckpts=foo"], ["ckpts='foo'"]),
    Case("eval-scale", E, [*EVAL, "model=bicubic", "scale=5"], ["scale=5 is not supported"]),
    Case("eval-no-ckpt", E, [*EVAL, "model=edsr"], ["model=edsr", "ckpt=<file>"]),
    Case("eval-truncated", E, [*EVAL, "ckpt={truncated}", *TINY], ["truncated.pth"]),
    Case("eval-refused", E, [*EVAL, "ckpt={refused}", *TINY], ["refused.pth", "refused"]),
    Case("eval-baseline", E, [*EVAL, "baselines=[lanczos]"], ["lanczos", "baselines"]),
    Case("eval-tta", E, [*EVAL, "ckpt={weights}", "tta=x4"], ["tta='x4'"]),
    Case("eval-device", E, [*EVAL, "model=bicubic", "device=cuda:7"], ["device=cuda:7"]),
    Case("eval-precision", E, [*EVAL, "ckpt={weights}", "precision=fp8"], ["precision='fp8'"]),
    Case(
        "eval-too-small-for-ssim",
        E,
        ["progress=false", "scale=2", "model=bicubic", *folder_data("{good}", "{tiny_val}")],
        ["speck.png", "crop_border"],
    ),
    Case(
        "eval-benchmark-root",
        E,
        ["progress=false", "model=bicubic", "data=benchmark", "data.root={missing}"],
        ["data.root"],
    ),
    # -- predict ---------------------------------------------------------------------------------
    Case("predict-tile", P, [*PREDICT, "ckpt={weights}", "tile=abc"], ["tile='abc'"]),
    Case("predict-negative-tile", P, [*PREDICT, "ckpt={weights}", "tile=-1"], ["tile=-1"]),
    Case(
        "predict-scale-5",
        P,
        [*PREDICT, "ckpt={weights}", "scale=5"],
        ["scale=5 is not supported"],
        forbid=["x5"],
    ),
    Case("predict-truncated", P, [*PREDICT, "ckpt={truncated}"], ["truncated.pth"]),
    Case("predict-refused", P, [*PREDICT, "ckpt={refused}"], ["refused.pth", "refused"]),
    Case("predict-no-input", P, ["ckpt={weights}", "output={out}"], ["input=", "output="]),
    Case("predict-input-missing", P, [*PREDICT[1:], "input={missing}"], ["{missing}"]),
    Case(
        "predict-output-is-input",
        P,
        ["ckpt={weights}", "input={good}", "output={good}", "format=jpg"],
        ["is the input folder"],
    ),
    Case("predict-format", P, [*PREDICT, "ckpt={weights}", "format=gif"], ["format='gif'"]),
    Case(
        "predict-output-blocked",
        P,
        [*PREDICT[:1], "ckpt={weights}", "output={blocker}/sub"],
        ["cannot write to output="],
    ),
    Case("predict-other-arch", P, [*PREDICT, "ckpt={weights}", "model=rcan"], ["holds edsr"]),
]


def _fill(text: str, w: dict[str, str], out: Path) -> str:
    return text.format(**w, out=out)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_one_line_and_exit_code_2(case, w, tmp_path, capfd):
    out = tmp_path / "out"
    overrides = [_fill(o, w, out) for o in case.overrides]
    if case.verb != "predict":
        overrides.append(f"hydra.run.dir={out / 'run'}")
    env = {k: (None if v is None else _fill(v, w, out)) for k, v in case.env.items()}
    outcome = call_main(case.verb, *overrides, env=env)
    printed = capfd.readouterr()
    text = printed.out + printed.err
    assert outcome.code == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert len(outcome.errors) == 1, outcome.errors
    line = outcome.errors[0]
    assert "\n" not in line, line
    for fragment in case.expect:
        assert _fill(fragment, w, out) in line, line
    for wrong in case.forbid:
        assert wrong not in line, line
    if out.exists():
        assert incomplete_files(out) == []


def test_weights_errors_are_the_same_in_every_command(w, tmp_path, capfd):
    """A truncated or refused weights file reads the same from train, evaluate and predict."""
    for key in ("truncated", "refused"):
        messages = [
            call_main(T, *FAST, f"model.init_from={w[key]}", f"hydra.run.dir={tmp_path / 't'}"),
            call_main(
                E,
                *[_fill(o, w, tmp_path) for o in EVAL],
                f"ckpt={w[key]}",
                *TINY,
                f"hydra.run.dir={tmp_path / 'e'}",
            ),
            call_main(P, *[_fill(o, w, tmp_path) for o in PREDICT], f"ckpt={w[key]}"),
        ]
        first = messages[0].errors[0]
        assert all(first in m.errors[0] for m in messages), [m.errors for m in messages]
    assert "Traceback" not in capfd.readouterr().err


# -- folders the run cannot write: permissions, so not as root ------------------------------------
@pytest.fixture
def shared_tmp():
    """A folder every user may enter (pytest's own tmp folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="medsr-perm-"))
    folder.chmod(0o777)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o777)
    shutil.rmtree(folder, ignore_errors=True)


def _read_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("where", ["working folder", "run folder", "checkpoint folder"])
def test_read_only_folders_are_found_before_training(where, shared_tmp, samples_dir, capfd):
    data = shared_tmp / "data"
    write_image(data / "a.png", read_image(samples_dir / "val" / "chelsea.png")[:64, :64])
    overrides = [*FAST, *folder_data(str(data), str(data))]
    cwd = None
    if where == "working folder":
        cwd = _read_only(shared_tmp / "cwd")  # the default run folder outputs/... lies inside
        expect = str(cwd / "outputs")
    elif where == "run folder":
        run = _read_only(shared_tmp / "run")
        overrides.append(f"hydra.run.dir={run}")
        expect = str(run)
    else:
        run = shared_tmp / "run"
        run.mkdir()
        run.chmod(0o777)
        _read_only(run / "checkpoints")
        overrides.append(f"hydra.run.dir={run}")
        expect = str(run / "checkpoints")
    # The same path as root first, ending at a setting (imports everything the child needs).
    call_main(T, *overrides, "trainer.max_steps=0", f"hydra.run.dir={shared_tmp / 'warm'}")
    capfd.readouterr()
    outcome = unprivileged(lambda: call_main(T, *overrides, cwd=cwd))
    text = "".join(capfd.readouterr())
    assert outcome.code == 2, (outcome, text[-2000:])
    assert len(outcome.errors) == 1 and expect in outcome.errors[0], outcome.errors
    assert "\n" not in outcome.errors[0] and "Traceback" not in text
