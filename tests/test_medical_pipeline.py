"""Medical data through training and evaluation: native bit depth, one channel, patient split."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
import torch
from hydra.utils import instantiate

from helpers import compose_config
from medical_helpers import make_dicom, pydicom_file
from medsr.data.medical import StoredRange
from medsr.errors import ConfigError, DataError
from medsr.ops import imresize
from medsr.training import sr_module

ONE_CHANNEL = ["model.net.num_in_ch=1", "model.net.num_out_ch=1"]
TINY = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1", *ONE_CHANNEL]


def smooth_image(rng: np.random.Generator, h: int, w: int, bits: int = 16) -> np.ndarray:
    """Smooth random content over the whole ``bits``-bit unsigned range (not 8-bit levels x 257)."""
    noise = rng.normal(size=(h + 8, w + 8)).cumsum(0).cumsum(1)
    noise = noise[8:, 8:] - noise[:-8, 8:] - noise[8:, :-8] + noise[:-8, :-8]  # 8x8 box sums
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.round(noise * (2**bits - 1)).astype(np.int64)


@pytest.fixture
def dicom16(tmp_path):
    """4 patients x 2 slices of 16-bit unsigned DICOM, 48x40, in patient folders."""
    rng = np.random.default_rng(0)
    root = tmp_path / "dicom"
    for p in range(4):
        for k in range(2):
            values = smooth_image(rng, 48, 40)
            make_dicom(root / f"P{p}" / f"s{k}.dcm", values, 16, False, PatientID=f"P{p}")
    return root


def _data(root, *overrides):
    cfg = compose_config(
        "train", "data=dicom", f"data.roots=[{root}]", "scale=2", "data.patch_size=32",
        "data.batch_size=4", "data.num_workers=0", *overrides,
    )  # fmt: skip
    return cfg, instantiate(cfg.data)


@pytest.fixture
def train_in_process(monkeypatch):
    """``medsr.train.train`` in this process, with the Hydra run context its configs resolve."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from medsr.train import train

    def run(root, out_dir, *overrides):
        cfg = compose_config(
            "train", "data=dicom", f"data.roots=[{root}]", "scale=2", *overrides,
            return_hydra_config=True,
        )  # fmt: skip
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out_dir)
            HydraConfig.instance().set_config(cfg)
            del cfg["hydra"]  # as in a run: the job's config has no hydra node
        return train(cfg, out_dir)

    yield run
    HydraConfig.instance().cfg = None


def test_patients_stay_on_one_side_and_the_split_is_written(dicom16, tmp_path):
    split_file = tmp_path / "split.csv"
    _, dm = _data(dicom16, "data.n_val=1", "data.n_test=1", f"data.split_file={split_file}")
    dm.setup("fit")
    dm.setup("test")
    groups = {k: {r.group for r in dm._records()[k]} for k in ("train", "val", "test")}
    assert len(groups["test"]) == len(groups["val"]) == 1 and len(groups["train"]) == 2
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["val"])
    rows = list(csv.DictReader(open(split_file)))
    assert {(r["split"], r["group"]) for r in rows} >= {("test", next(iter(groups["test"])))}
    _, again = _data(dicom16, f"data.split_file={split_file}", "data.split_seed=5")
    again.setup("fit")  # the file wins over a new seed
    assert [r.name for r in again._records()["test"]] == [r.name for r in dm._records()["test"]]


@pytest.mark.slow
def test_one_channel_edsr_trains_on_16_bit_values_and_scores_against_the_16_bit_peak(
    dicom16, tmp_path, monkeypatch, train_in_process
):
    """Training batches hold 16-bit levels (not 8-bit levels x 257); the bicubic row's PSNR
    equals an independent computation with peak 65535."""
    seen = []
    step = sr_module.SRModule.training_step

    def spy(self, batch, batch_idx):
        seen.append({k: v.detach().clone() for k, v in batch.items()})
        return step(self, batch, batch_idx)

    monkeypatch.setattr(sr_module.SRModule, "training_step", spy)
    train_in_process(dicom16, tmp_path / "run", "debug=fast", *TINY, "data.test_groups=[P3]")
    hr = torch.cat([b["hr"] for b in seen])
    lr = torch.cat([b["lr"] for b in seen])
    assert hr.shape[1] == 1 and lr.shape[1] == 1  # no grey -> RGB expansion
    levels = hr * 65535
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # 16-bit levels, exactly
    assert (levels.round().long() % 257 != 0).float().mean() > 0.9  # not 8-bit values x 257
    lr_levels = lr * 65535
    assert torch.allclose(lr_levels, lr_levels.round(), atol=1e-3)  # LR rounded to 16 bits
    assert not torch.allclose(lr * 255, (lr * 255).round(), atol=1e-3)  # ... not to 8 bits

    rows = json.loads((tmp_path / "run" / "results.json").read_text())
    bicubic = next(r for r in rows if r["method"] == "Bicubic")
    assert "16 bits" in bicubic["protocol"] and "65535" in bicubic["protocol"]
    psnrs = []
    for k in range(2):  # the held-out patient's slices, scored independently in float64
        path = dicom16 / "P3" / f"s{k}.dcm"
        import pydicom

        hr16 = pydicom.dcmread(path).pixel_array.astype(np.float64)
        x = torch.from_numpy(hr16)[None, None] / 65535
        lr16 = torch.floor(imresize(x, 0.5).clamp(0, 1) * 65535 + 0.5)
        sr16 = torch.floor(imresize(lr16 / 65535, 2.0).clamp(0, 1) * 65535 + 0.5)[0, 0].numpy()
        err = (sr16 - hr16)[2:-2, 2:-2]
        psnrs.append(10 * np.log10(65535**2 / np.mean(err**2)))
    assert bicubic["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)
    # The exported weights say which range they were trained on (predict normalises by it).
    from medsr.models import read_spec

    (exported,) = (tmp_path / "run").glob("*.pth")
    assert read_spec(exported)["stored"] == {"bits": 16, "signed": False, "window": None}


def test_mixed_bit_depths_are_an_error_naming_the_fix(tmp_path):
    root = tmp_path / "mixed"
    make_dicom(root / "a.dcm", np.zeros((40, 40)), 12, False, PatientID="A")
    make_dicom(root / "b.dcm", np.zeros((40, 40)), 16, True, PatientID="B")
    make_dicom(root / "c.dcm", np.zeros((40, 40)), 16, True, PatientID="C")
    _, dm = _data(root)
    with pytest.raises(DataError, match=r"mixed bit depths.*a\.dcm.*data\.bits=16"):
        dm.setup("fit")
    _, dm = _data(root, "data.bits=16")
    dm.setup("fit")
    assert dm.stored == StoredRange(16, signed=True)  # one range holding both
    with pytest.raises(ConfigError, match="data.bits=8 is narrower"):
        _data(root, "data.bits=8")[1].setup("fit")


def test_an_rgb_dicom_into_a_one_channel_network_names_the_file(tmp_path, train_in_process):
    import shutil

    root = tmp_path / "rgb"
    root.mkdir()
    shutil.copy(pydicom_file("SC_rgb_rle_2frame.dcm"), root / "colour.dcm")
    make_dicom(root / "grey.dcm", np.zeros((100, 100)), 8, False, BitsAllocated=16, PatientID="G")
    overrides = ("debug=fast", *TINY, "data.test_groups=[G]", "data.n_val=0", "data.bits=16")
    with pytest.raises(DataError, match=r"colour\.dcm has 3 channel.*model\.net\.num_in_ch"):
        train_in_process(root, tmp_path / "run", *overrides)


def test_nifti_volumes_train_as_slices(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(1)
    root = tmp_path / "nifti"
    root.mkdir()
    for name in ("a", "b", "c"):
        volume = np.stack([smooth_image(rng, 40, 36, 12) for _ in range(3)], axis=-1)
        nib.save(nib.Nifti1Image(volume.astype(np.int16), np.eye(4)), root / f"{name}.nii.gz")
    cfg, dm = _data(root, "data=nifti", f"data.roots=[{root}]", "data.n_val=0")
    dm.setup("fit")
    assert dm.stored == StoredRange(16, signed=True) and len(dm._records()["train"]) == 6
    batch = next(iter(dm.train_dataloader()))
    side = 32 + 2 * batch["margin"] * 2  # the patch and its LR margin at x2 (data.exact_lr)
    assert batch["hr"].dtype == torch.int16 and batch["hr"].shape == (4, 1, side, side)
    step = dm.on_after_batch_transfer(batch, 0)
    assert step["hr"].shape == (4, 1, 32, 32) and step["lr"].shape == (4, 1, 16, 16)


def test_sixteen_bit_png_sets_say_16_bit_in_their_protocol(tmp_path):
    """The protocol words of a 16-bit set name 16-bit LR and the 16-bit peak, not 8 bits."""
    from medsr.data.datamodules import FolderDataModule
    from medsr.data.image_io import write_image
    from medsr.evaluation.inference import Upscaler
    from medsr.evaluation.scoring import Method, score_sets
    from medsr.models import build_model

    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        write_image(tmp_path / split / "a.png", smooth_image(rng, 40, 40).astype(np.uint16))
    dm = FolderDataModule(
        train_dirs=[str(tmp_path / "train")], val_dirs=[str(tmp_path / "val")], scale=2,
        patch_size=32, num_workers=0,
    )  # fmt: skip
    dm.setup("test")
    bicubic = Method("Bicubic", Upscaler(build_model("bicubic", 2), 2))
    (row,) = score_sets([bicubic], dm, 2, 2, torch.device("cpu")).rows
    assert "HR, 16-bit" in row.protocol and "8-bit" not in row.protocol
    assert "PSNR peak and SSIM's L: the full 16-bit range" in row.protocol


@pytest.mark.slow
def test_quickstart_ct_preset_on_short_schedule(tmp_path):
    """experiment=quickstart_ct end to end on pydicom's shipped files (4 steps): the summary
    line over the two held-out patients, the split file and the comparison picture."""
    from helpers import run_module

    run = run_module(
        "medsr.train", "experiment=quickstart_ct", "trainer.max_steps=4",
        "trainer.val_check_interval=2", "data.num_workers=0", "data.batch_size=2",
        "trainer.enable_progress_bar=false", run_dir=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("quickstart_ct: ")]
    assert len(lines) == 1 and "EDSR_f32b4 x2" in lines[0] and "on 2 held-out images" in lines[0]
    split = list(csv.DictReader(open(tmp_path / "medical_split.csv")))
    assert {r["group"] for r in split if r["split"] == "test"} == {"1CT1", "4MR1"}
    assert {r["group"] for r in split if r["split"] == "train"}.isdisjoint({"1CT1", "4MR1"})
    assert (tmp_path / "comparison.png").is_file()


def test_slices_smaller_than_the_patch_stop_training_or_are_skipped(dicom16):
    _, dm = _data(dicom16, "data.patch_size=48", "data.test_groups=[P3]", "data.n_val=0")
    with pytest.raises(DataError, match=r"P0/s0\.dcm is 40x48, smaller than the 48x48"):
        dm.setup("fit")
    _, dm = _data(dicom16, "data.patch_size=48", "data.test_groups=[P3]", "data.n_val=0",
                  "data.skip_bad=true")  # fmt: skip
    with pytest.warns(UserWarning, match="6 file"), pytest.raises(DataError, match="no training"):
        dm.setup("fit")
    assert len(dm._records()["test"]) == 2  # evaluation takes small slices whole


def test_twelve_bit_slices_keep_twelve_bit_levels(tmp_path):
    """12-bit CT/MR: normalised by 4095 and LR rounded to 1/4095 steps, for every degradation."""
    rng = np.random.default_rng(3)
    root = tmp_path / "twelve"
    for p in range(3):
        make_dicom(root / f"{p}.dcm", smooth_image(rng, 40, 40, 12), 12, False, PatientID=f"P{p}")
    for degradation in ("bicubic", "scanner"):
        _, dm = _data(root, f"degradation={degradation}", "data.n_val=0")
        dm.setup("fit")
        assert dm.stored == StoredRange(12, signed=False)
        raw = next(iter(dm.train_dataloader()))
        assert raw["hr"].dtype == torch.uint16 and int(raw["hr"].int().max()) <= 4095
        out = dm.on_after_batch_transfer(raw, 0)
        for key in ("hr", "lr"):
            levels = out[key] * 4095
            assert torch.allclose(levels, levels.round(), atol=1e-3), (degradation, key)


def test_a_ct_window_is_what_training_and_scoring_see(tmp_path):
    """data.window=[40,400]: values through RescaleSlope/Intercept and the DICOM window, clipped."""
    rng = np.random.default_rng(2)
    root = tmp_path / "ct"
    for p in range(3):  # 12-bit CT, intercept -1024: stored 0..4095 is -1024..3071 HU
        values = smooth_image(rng, 48, 40, bits=12)
        make_dicom(root / f"P{p}" / "s.dcm", values, 12, False, PatientID=f"P{p}")
    _, dm = _data(root, "data.window=[40,400]", "data.n_val=0", "data.test_groups=[P0]")
    dm.setup("test")
    assert dm.stored.window == (40.0, 400.0, 1.0, -1024.0)
    (words,) = [s.protocol for s in dm.eval_sets("test")]
    assert "window 40/400" in words and "clipped" in words
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    stored = pydicom.dcmread(root / "P0" / "s.dcm").pixel_array
    stored = torch.from_numpy(stored.astype(np.float64))
    hu = stored - 1024
    expected = ((hu - 39.5) / 399 + 0.5).clamp(0, 1)  # PS3.3 C.11.2.1.2.1
    torch.testing.assert_close(batch["hr"][0, 0].double(), expected, atol=1e-6, rtol=0)
    assert 0 < float((batch["hr"] == 0).float().mean()) < 1  # the window clips part of the image


def test_a_window_needs_one_modality_lut_and_two_numbers(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "mixed"
    make_dicom(root / "A" / "s.dcm", smooth_image(rng, 48, 40, 12), 12, False, PatientID="A")
    make_dicom(
        root / "B" / "s.dcm", smooth_image(rng, 48, 40, 12), 12, False, PatientID="B",
        RescaleIntercept=-1000,
    )  # fmt: skip
    with pytest.raises(DataError, match=r"one modality LUT.*intercept -1000: e\.g\. .*s\.dcm"):
        _data(root, "data.window=[40,400]", "data.n_val=0")[1].setup("fit")
    with pytest.raises(ConfigError, match=r"data\.window=\[40\] must be \[center, width\]"):
        _data(root, "data.window=[40]", "data.n_val=0")[1].setup("fit")
