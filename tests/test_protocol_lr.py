"""How LR is made (docs/protocol.md, "LR generation" and "rounding"): a training LR patch equals
the crop of the whole image's LR at the patch (and its dihedral transform under augmentation),
and ``degradation.matlab_uint8`` reproduces MATLAB's uint8 imresize, checked against an
independent pixel-by-pixel port of MATLAB's algorithm."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from helpers import compose_config
from medsr.data.datasets import PatchDataset
from medsr.data.degradations import BicubicDegradation, build_degradation
from medsr.data.degrade import bicubic_lr, dihedral, eval_batch, to_unit_float, train_batch
from medsr.data.image_io import write_image
from medsr.data.patches import LR_MARGIN, PatchGeometry, crop_with_margin
from medsr.data.sources import IMRESIZE_PROTOCOL, IMRESIZE_UINT8_PROTOCOL, records_from
from medsr.ops import imresize, quantize
from test_imresize import _resize_axis0

P = 24  # a multiple of 2, 3 and 4


@pytest.fixture(scope="module")
def photo(samples_dir) -> np.ndarray:
    """A 71x62 crop of a real photograph: no side a multiple of 3 or 4, so mod-cropping matters."""
    image = np.asarray(Image.open(samples_dir / "train" / "astronaut.png").convert("RGB"))
    return np.ascontiguousarray(image[100:171, 200:262])


def whole_lr(image: np.ndarray, scale: int, matlab_uint8: bool = False) -> torch.Tensor:
    """quantize(imresize(whole mod-cropped HR)): the LR evaluation and LR files hold."""
    h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
    hr = torch.from_numpy(np.ascontiguousarray(image[:h, :w])).permute(2, 0, 1)[None]
    return bicubic_lr(to_unit_float(hr), scale, matlab_uint8=matlab_uint8)[0]


def patch_batches(tmp_path, image, scale, n=3, margin=LR_MARGIN):
    path = write_image(tmp_path / "photo.png", image)
    ds = PatchDataset(records_from([path]), P, 16, 0, 16, 0, scale=scale, margin=margin)
    torch.manual_seed(0)
    batches = []
    for batch in ds:
        batches.append(batch)
        if len(batches) == n:
            return batches
    return batches


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_training_lr_is_the_crop_of_the_whole_image_lr(tmp_path, photo, scale):
    reference = whole_lr(photo, scale)
    hr_whole = to_unit_float(torch.from_numpy(photo).permute(2, 0, 1))
    q, touching = P // scale, 0
    h, w = (n - n % scale for n in photo.shape[:2])
    for batch in patch_batches(tmp_path, photo, scale):
        assert batch["hr"].shape[-1] == P + 2 * LR_MARGIN * scale and batch["margin"] == LR_MARGIN
        out = train_batch(batch, scale, augment=False)
        assert out["lr"].shape[-2:] == (q, q) and out["hr"].shape[-2:] == (P, P)
        for k, (_, y, x) in enumerate(batch["pos"].tolist()):
            assert y % scale == 0 and x % scale == 0  # on the LR grid
            want = reference[:, y // scale : y // scale + q, x // scale : x // scale + q]
            assert torch.equal(out["lr"][k], want), (scale, y, x)
            assert torch.equal(out["hr"][k], hr_whole[:, y : y + P, x : x + P])
            pad = LR_MARGIN * scale
            touching += min(y, x) < pad or y + P + pad > h or x + P + pad > w
    # Many margins left the image, where the whole image's own padding had to be reproduced.
    assert touching >= 5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_augmented_lr_is_the_same_transform_of_the_whole_image_lr(tmp_path, photo, scale):
    reference = whole_lr(photo, scale)
    q = P // scale
    (batch,) = patch_batches(tmp_path, photo, scale, n=1)
    out = train_batch(batch, scale, augment=True, generator=torch.Generator().manual_seed(3))
    codes = torch.randint(0, 8, (16,), generator=torch.Generator().manual_seed(3)).tolist()
    assert len(set(codes)) > 3  # several transforms in the batch
    crops = [
        reference[:, y // scale : y // scale + q, x // scale : x // scale + q]
        for _, y, x in batch["pos"].tolist()
    ]
    assert torch.equal(
        out["lr"], torch.stack([dihedral(c, k) for c, k in zip(crops, codes, strict=True)])
    )
    plain = train_batch(batch, scale, augment=False)["hr"]
    assert torch.equal(
        out["hr"], torch.stack([dihedral(h, k) for h, k in zip(plain, codes, strict=True)])
    )


@pytest.mark.parametrize("scale", [2, 4])
def test_without_the_margin_border_lr_pixels_differ(tmp_path, photo, scale):
    """``data.exact_lr=false`` degrades the bare patch: its outer LR ring sees mirrored edges."""
    reference = whole_lr(photo, scale)
    q = P // scale
    (batch,) = patch_batches(tmp_path, photo, scale, n=1, margin=0)
    out = train_batch(batch, scale, augment=False)
    crops = torch.stack(
        [
            reference[:, y // scale : y // scale + q, x // scale : x // scale + q]
            for _, y, x in batch["pos"].tolist()
        ]
    )
    differ = (out["lr"] != crops).any(dim=1)  # (B, q, q)
    assert differ.any() and not differ[:, 2:-2, 2:-2].any()  # only the outer two LR pixels


def test_margin_crop_pads_like_the_whole_image_for_any_dtype():
    image = np.arange(7 * 9 * 2, dtype=np.uint16).reshape(7, 9, 2) * 401
    geo = PatchGeometry(size=4, scale=2, margin=1)  # extent 6 x 8 (mod-cropped)
    corner = crop_with_margin(image, 0, 0, geo)
    rows = [1, 0, 0, 1, 2, 3, 4, 5]  # MATLAB symmetric: ... 1 0 | 0 1 2 ...
    assert corner.dtype == np.uint16 and corner.shape == (8, 8, 2)
    assert np.array_equal(corner, image[rows][:, rows])
    far = crop_with_margin(image, 2, 4, geo)  # reaches past row 5 / column 7: mirrored there
    assert np.array_equal(far, image[[0, 1, 2, 3, 4, 5, 5, 4]][:, [2, 3, 4, 5, 6, 7, 7, 6]])
    inside = crop_with_margin(image, 2, 2, PatchGeometry(size=2, scale=2, margin=1))
    assert np.shares_memory(inside, image)  # the common case is a view


# -- MATLAB's uint8 intermediate ------------------------------------------------------------
def matlab_uint8_imresize(image: np.ndarray, scale: int) -> np.ndarray:
    """imresize(uint8 image, 1/scale) as MATLAB computes it: each 1-D pass (rows first) returns
    uint8, rounded half away from zero and saturated. Written pixel by pixel on 0-255 levels."""
    x = image.astype(np.float64)
    rows = np.clip(np.floor(_resize_axis0(x, x.shape[0] // scale, 1 / scale) + 0.5), 0, 255)
    cols = _resize_axis0(np.swapaxes(rows, 0, 1), x.shape[1] // scale, 1 / scale)
    return np.swapaxes(np.clip(np.floor(cols + 0.5), 0, 255), 0, 1).astype(np.uint8)


def medsr_lr(image: np.ndarray, scale: int, matlab_uint8: bool, dtype=torch.float64):
    hr = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(dtype) / 255
    lr = bicubic_lr(hr, scale, matlab_uint8=matlab_uint8)
    return (lr[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matlab_uint8_matches_matlab_made_lr_files(samples_dir, scale):
    image = np.asarray(Image.open(samples_dir / "train" / "coffee.png").convert("RGB"))
    image = np.ascontiguousarray(image[:120, :180])  # multiples of 2, 3 and 4
    matlab = matlab_uint8_imresize(image, scale)  # what MATLAB writes as the LR file
    assert np.array_equal(medsr_lr(image, scale, matlab_uint8=True), matlab)
    # float32 on the device: the same levels (at most a float tie away: none in this image)
    assert np.array_equal(medsr_lr(image, scale, True, torch.float32), matlab)
    # The float intermediate (default) differs by one level in many pixels: the switch matters.
    float_lr = medsr_lr(image, scale, matlab_uint8=False)
    differ = float_lr != matlab
    assert 0.03 < differ.mean() < 0.3
    assert np.abs(float_lr.astype(int) - matlab).max() == 1


def test_imresize_integer_bits_rounds_after_each_pass():
    x = quantize(
        torch.rand(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    )
    rows = quantize(imresize(x, size=(4, 8)))
    got = imresize(x, 0.5, integer_bits=8)
    torch.testing.assert_close(got, quantize(imresize(rows, size=(4, 4))), rtol=0, atol=1e-12)
    assert torch.equal(got, quantize(got)) and not torch.equal(quantize(imresize(x, 0.5)), got)


@pytest.mark.parametrize("matlab_uint8", [False, True])
def test_degradation_switch_reaches_training_evaluation_and_protocol_words(
    samples_dir, matlab_uint8
):
    cfg = compose_config(
        "train",
        "data=samples",
        "scale=2",
        "data.num_workers=0",
        "data.patch_size=24",
        f"degradation.matlab_uint8={str(matlab_uint8).lower()}",
    )
    degradation = build_degradation(cfg.degradation)  # as medsr.train and medsr.evaluate do
    assert degradation.matlab_uint8 is matlab_uint8
    dm = instantiate(cfg.data, degradation=degradation)
    dm.trainer = SimpleNamespace(training=False)
    dm.setup("fit")
    words = IMRESIZE_UINT8_PROTOCOL if matlab_uint8 else IMRESIZE_PROTOCOL
    assert dm.protocol == words and ("uint8 intermediate" in words) is matlab_uint8
    image = np.asarray(Image.open(samples_dir / "val" / "chelsea.png").convert("RGB"))[:300, :450]
    hr = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    lr = dm.on_after_batch_transfer({"hr": hr, "name": ["c"], "dataset": ["samples"]}, 0)["lr"]
    expected = matlab_uint8_imresize(image, 2) if matlab_uint8 else medsr_lr(image, 2, False)
    assert np.array_equal((lr[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    batch = next(iter(dm.train_dataloader()))
    out = train_batch(batch, 2, False)  # float intermediate
    matlab = train_batch(batch, 2, False, degradation=BicubicDegradation(matlab_uint8=True))
    assert torch.equal(
        dm.on_after_batch_transfer(batch, 0)["lr"], (matlab if matlab_uint8 else out)["lr"]
    )
    assert not torch.equal(out["lr"], matlab["lr"])
    evaluate = compose_config("evaluate", f"degradation.matlab_uint8={str(matlab_uint8).lower()}")
    assert build_degradation(evaluate.degradation).matlab_uint8 is matlab_uint8


def test_eval_batch_keeps_16_bit_sources_on_16_bit_levels():
    hr = torch.randint(0, 65536, (1, 3, 12, 12), dtype=torch.int32).to(torch.uint16)
    batch = {"hr": hr, "name": ["x"], "dataset": ["d"]}
    lr = eval_batch(batch, 2, BicubicDegradation(matlab_uint8=True))["lr"]
    levels = lr.double() * 65535  # float32 holds k / 65535 to about 0.004 of a level
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=0.01)
    assert (levels.round() % 257 != 0).any()  # 16-bit levels, not 8-bit ones


# -- patch sampling ---------------------------------------------------------------------------
def test_fov_min_fraction_zero_samples_uniformly():
    from medsr.data.decode import FovOptions
    from medsr.data.patches import patch_position

    mask = np.zeros((120, 100), bool)
    mask[:, :30] = True  # most patches are mostly outside

    def positions(fov_mask, fov):
        rng = np.random.default_rng(7)
        return [patch_position(fov_mask, (120, 100), 32, rng, fov, 2) for _ in range(50)]

    uniform = positions(None, FovOptions())
    assert positions(mask, FovOptions(True, min_fraction=0.0)) == uniform  # no redraws
    redrawn = positions(mask, FovOptions(True, min_fraction=0.5))
    assert redrawn != uniform
    assert all(mask[y : y + 32, x : x + 32].mean() >= 0.5 for y, x in redrawn)
    cfg = compose_config("train", "data=messidor", "data.fov_min_fraction=0")
    assert instantiate(cfg.data).fov.min_fraction == 0.0


@pytest.mark.parametrize("matlab_uint8", [False, True])
def test_results_rows_say_which_rounding_made_the_lr(tmp_path, samples_dir, matlab_uint8):
    from medsr.evaluate import evaluate

    flag = str(matlab_uint8).lower()
    cfg = compose_config(
        "evaluate",
        "model=bicubic",
        "data=folder",
        f"data.val_dirs=[{tmp_path / 'hr'}]",
        f"data.train_dirs=[{tmp_path / 'hr'}]",
        "scale=2",
        "progress=false",
        f"degradation.matlab_uint8={flag}",
    )
    image = np.asarray(Image.open(samples_dir / "train" / "coffee.png").convert("RGB"))[:120, :180]
    write_image(tmp_path / "hr" / "coffee.png", np.ascontiguousarray(image))
    (row,) = evaluate(cfg, tmp_path / "out")
    assert (IMRESIZE_UINT8_PROTOCOL if matlab_uint8 else IMRESIZE_PROTOCOL) in row["protocol"]
