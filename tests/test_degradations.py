"""Realistic degradations: kernel statistics over 10^4 draws, JPEG against Pillow on real images,
noise levels on flat patches, seeding, shapes and config errors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import degradation_preset
from medsr.conf.compose import degradation_config
from medsr.data.degradations import build_degradation, step_generator
from medsr.data.degradations.config import from_mapping
from medsr.data.degradations.jpeg import jpeg
from medsr.data.degradations.kernels import (
    SINC,
    BlurSpec,
    KernelParams,
    disk_kernels,
    draw_kernels,
    gaussian_blur,
    line_kernels,
    mixed_kernels,
)
from medsr.data.degradations.noise import (
    gaussian_noise,
    poisson_noise,
    rician_noise,
    sensor_noise,
)
from medsr.data.degrade import random_dihedral
from medsr.errors import ConfigError, DataError

N_DRAWS = 10_000


def ks_crit(n) -> float:
    """Kolmogorov-Smirnov critical distance for ``n`` samples at alpha = 0.001."""
    return 1.949 / math.sqrt(int(n))


def ks_statistic(samples: torch.Tensor, cdf) -> float:
    """Two-sided KS distance between the samples' ECDF and ``cdf``."""
    x = torch.sort(samples.double()).values
    n = x.numel()
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - f, f - (i - 1) / n).max())


def uniform_cdf(lo: float, hi: float):
    return lambda x: ((x - lo) / (hi - lo)).clamp(0, 1)


def assert_proportion(hits: torch.Tensor, p: float) -> None:
    """Binomial proportion within 4.5 standard errors of ``p``."""
    n = hits.numel()
    tol = 4.5 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert abs(float(hits.double().mean()) - p) <= tol, (float(hits.double().mean()), p, tol)


@pytest.fixture(scope="module")
def first_blur() -> BlurSpec:
    return from_mapping(BlurSpec, degradation_preset("realesrgan")["first"]["blur"], "first.blur")


@pytest.fixture(scope="module")
def draws(first_blur):
    return draw_kernels(first_blur, N_DRAWS, torch.Generator().manual_seed(123))


@pytest.fixture(scope="module")
def kernels(draws):
    return mixed_kernels(draws, 21, dtype=torch.float64)


# -- the sampler follows the configured distributions -------------------------------------------
def test_kernel_draws_match_configured_distributions(first_blur, draws):
    spec, p = first_blur, draws
    assert_proportion(p.kind == SINC, spec.sinc_prob)
    mixed = p.kind != SINC
    for idx, prob in enumerate(spec.kernel_probs):
        assert_proportion(p.kind[mixed] == idx, prob)
    for size in range(7, 22, 2):
        assert_proportion(p.size == size, 1 / 8)
    assert ks_statistic(p.sigma_x, uniform_cdf(*spec.sigma)) < ks_crit(N_DRAWS)
    aniso = (p.kind == 1) | (p.kind == 3) | (p.kind == 5)
    assert ks_statistic(p.theta[aniso], uniform_cdf(*spec.rotation)) < ks_crit(aniso.sum())
    assert torch.equal(p.sigma_y[p.kind == 0], p.sigma_x[p.kind == 0])
    # generalised: U(0.5, 1) or U(1, 4) with probability 1/2 each
    gen_beta = p.beta[(p.kind == 2) | (p.kind == 3)]
    lo, hi = spec.betag

    def mixture(x):
        return 0.5 * uniform_cdf(lo, 1.0)(x) + 0.5 * uniform_cdf(1.0, hi)(x)

    assert ks_statistic(gen_beta, mixture) < ks_crit(gen_beta.numel())
    # plateau: betap = [1, 2] gives beta = 1 half the time (BasicSR's U(1, 1)), else U(1, 2)
    plat = p.beta[p.kind >= 4]
    assert_proportion(plat == 1.0, 0.5)
    assert abs(float(plat.mean()) - 1.25) < 4.5 * float(plat.std()) / math.sqrt(plat.numel())
    # sinc cut-off: [pi/3, pi] below size 13, [pi/5, pi] from 13
    sinc = p.kind == SINC
    small, large = sinc & (p.size < 13), sinc & (p.size >= 13)
    assert ks_statistic(p.cutoff[small], uniform_cdf(*spec.sinc_cutoff_small)) < ks_crit(
        small.sum()
    )
    assert ks_statistic(p.cutoff[large], uniform_cdf(*spec.sinc_cutoff_large)) < ks_crit(
        large.sum()
    )


# -- the kernels carry their parameters (measured on the kernels themselves) --------------------
def _log_ratio(k: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``ln(k(0) / k(dx, dy))`` of (N, 21, 21) kernels (x along columns)."""
    return torch.log(k[:, 10, 10] / k[:, 10 + dy, 10 + dx])


def test_gaussian_kernels_have_the_drawn_sigma_and_rotation(draws, kernels):
    iso = (draws.kind == 0) & (draws.size >= 3)
    sigma = torch.sqrt(0.5 / _log_ratio(kernels[iso], 1, 0))
    torch.testing.assert_close(sigma, draws.sigma_x[iso], rtol=1e-9, atol=0)
    assert ks_statistic(sigma, uniform_cdf(0.2, 3.0)) < ks_crit(sigma.numel())
    # anisotropic: q = x^T S^-1 x from three log ratios, then its eigen-decomposition
    an = (draws.kind == 1) & (draws.size >= 3)
    k = kernels[an]
    a, c = 2 * _log_ratio(k, 1, 0), 2 * _log_ratio(k, 0, 1)
    b = (2 * _log_ratio(k, 1, 1) - a - c) / 2
    inv = torch.stack([torch.stack([a, b], -1), torch.stack([b, c], -1)], -2)
    evals, evecs = torch.linalg.eigh(inv)
    sig = torch.sort(1 / evals.sqrt(), dim=1).values
    drawn = torch.sort(torch.stack([draws.sigma_x[an], draws.sigma_y[an]], 1), dim=1).values
    torch.testing.assert_close(sig, drawn, rtol=1e-6, atol=0)
    # the axis of sigma_x (eigenvalue 1/sx^2) is at theta, modulo pi
    pick = (evals - 1 / draws.sigma_x[an, None] ** 2).abs().argmin(1)
    vec = evecs[torch.arange(len(pick)), :, pick]
    axis = torch.atan2(vec[:, 1], vec[:, 0]).remainder(math.pi)
    distinct = (draws.sigma_x[an] - draws.sigma_y[an]).abs() > 0.05  # round shapes have no axis
    diff = (axis - draws.theta[an].remainder(math.pi)).remainder(math.pi)
    assert torch.minimum(diff, math.pi - diff)[distinct].max() < 1e-5
    assert ks_statistic(axis[distinct], uniform_cdf(0, math.pi)) < ks_crit(distinct.sum())


def test_generalised_and_plateau_kernels_have_the_drawn_beta(draws, kernels):
    # q(1, 1) / q(1, 0) = 2 for isotropic kernels, so the log ratios give 2^beta
    gen = (draws.kind == 2) & (draws.size >= 3)
    r10, r11 = _log_ratio(kernels[gen], 1, 0), _log_ratio(kernels[gen], 1, 1)
    ok = torch.isfinite(r11)  # exp(-0.5 q^beta) underflows float64 for the sharpest kernels
    assert ok.double().mean() > 0.8
    beta = torch.log2(r11[ok] / r10[ok])
    torch.testing.assert_close(beta, draws.beta[gen][ok], rtol=1e-6, atol=1e-6)
    plat = (draws.kind == 4) & (draws.size >= 3)
    k = kernels[plat]
    e10 = k[:, 10, 10] / k[:, 10, 11] - 1  # 1 / (1 + q^beta): k(0)/k - 1 = q^beta
    e11 = k[:, 10, 10] / k[:, 11, 11] - 1
    torch.testing.assert_close(torch.log2(e11 / e10), draws.beta[plat], rtol=1e-6, atol=1e-6)


def test_sinc_kernels_cut_off_at_the_drawn_frequency(draws, kernels):
    sinc = (draws.kind == SINC) & (draws.size >= 13) & (draws.cutoff < 0.8 * math.pi)
    k = kernels[sinc]
    response = torch.fft.rfft(k.sum(1), n=512).abs()  # along omega_x (projection-slice)
    omega = torch.arange(257, dtype=torch.float64) * 2 * math.pi / 512
    measured = omega[(response < 0.5).double().argmax(1)]
    # within half the resolution 2 pi / k of a k-tap window
    tol = math.pi / draws.size[sinc].double()
    assert ((measured - draws.cutoff[sinc]).abs() < tol).all()
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(len(k), dtype=torch.float64))


def test_kernels_equal_basicsr_formulas():
    """Independent numpy port of BasicSR's bivariate kernels (rotated covariance, padded to 21)."""

    def reference(size, sx, sy, theta, beta, plateau):
        ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
        xx, yy = np.meshgrid(ax, ax)
        grid = np.stack([xx, yy], -1)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        inv = np.linalg.inv(rot @ np.diag([sx**2, sy**2]) @ rot.T)
        q = np.sum(np.dot(grid, inv) * grid, 2)
        k = 1 / (q**beta + 1) if plateau else np.exp(-0.5 * q**beta)
        pad = (21 - size) // 2
        return np.pad(k / k.sum(), pad)

    cases = [(21, 1.3, 0.5, 0.7, 1.0, 1), (13, 2.0, 1.0, -2.0, 0.6, 3), (7, 0.7, 2.5, 3.0, 1.7, 5)]
    params = KernelParams(
        kind=torch.tensor([c[5] for c in cases]),
        size=torch.tensor([c[0] for c in cases]),
        sigma_x=torch.tensor([c[1] for c in cases], dtype=torch.float64),
        sigma_y=torch.tensor([c[2] for c in cases], dtype=torch.float64),
        theta=torch.tensor([c[3] for c in cases], dtype=torch.float64),
        beta=torch.tensor([c[4] for c in cases], dtype=torch.float64),
        cutoff=torch.zeros(3, dtype=torch.float64),
    )
    k = mixed_kernels(params, 21, dtype=torch.float64).numpy()
    for i, (size, sx, sy, th, beta, kind) in enumerate(cases):
        np.testing.assert_allclose(k[i], reference(size, sx, sy, th, beta, kind >= 4), atol=1e-12)


def test_defocus_and_motion_kernels_have_their_size():
    disk = disk_kernels(torch.tensor([3.0, 6.0], dtype=torch.float64), 17, dtype=torch.float64)
    x = torch.arange(17, dtype=torch.float64) - 8
    var = (disk * x[None, None, :] ** 2).sum((1, 2))  # uniform disk: R^2 / 4 per axis
    torch.testing.assert_close(
        var, torch.tensor([9 / 4, 36 / 4], dtype=torch.float64), rtol=0.06, atol=0
    )
    length, angle = torch.tensor([8.0]), torch.tensor([math.pi / 2])
    line = line_kernels(length, angle, 13, dtype=torch.float64)[0]
    pos = torch.arange(13, dtype=torch.float64) - 6
    var_y, var_x = (line * pos[:, None] ** 2).sum(), (line * pos[None, :] ** 2).sum()
    # vertical segment of length 8: L^2/12 along y, plus the bilinear splat's 1/6 at most
    assert 64 / 12 <= float(var_y) <= 64 / 12 + 1 / 6 + 1e-9 and float(var_x) < 1e-6


def test_separable_gaussian_equals_kornia():
    from kornia.filters import gaussian_blur2d

    x = torch.rand(3, 2, 40, 57, dtype=torch.float64)
    sigma = torch.tensor([[1.0, 2.0], [0.5, 3.0], [8.0, 8.0]], dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(x, sigma, 31), gaussian_blur2d(x, (31, 31), sigma))


# -- JPEG against Pillow (libjpeg) on real images ------------------------------------------------
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def _real_images(shared_data):
    bench = shared_data / "benchmark"
    paths = sorted((bench / "Set5" / "HR").glob("*.png"))
    paths += [bench / "Set14" / "HR" / f"{n}.png" for n in ("bridge", "coastguard", "foreman")]
    paths += sorted((shared_data / "fundus" / "DRIVE" / "test" / "images").glob("*"))[:1]
    return paths


def test_jpeg_matches_pillow_within_1db(shared_data):
    diffs = []
    for path in _real_images(shared_data):
        im = Image.open(path)
        im = im if im.mode in ("RGB", "L") else im.convert("RGB")
        im = im.crop((0, 0, min(im.width, 256), min(im.height, 256)))  # top-left: same 8x8 grid
        ref = np.asarray(im).astype(np.float64) / 255
        t = torch.from_numpy(ref).float()
        t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
        for q in (30, 50, 75, 95):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=q)
            pil = _psnr(np.asarray(Image.open(buf)).astype(np.float64) / 255, ref)
            out = jpeg(t, torch.tensor([float(q)]))[0]
            out = out[0] if out.shape[0] == 1 else out.permute(1, 2, 0)
            ours = _psnr(out.numpy(), ref)
            if pil > 50:
                # The file was a JPEG of this quality (woman.png at 75): libjpeg re-encodes it
                # almost exactly (62 dB), a float DCT nearly so; both far from any real setting.
                assert ours > 45, (path.name, q, ours, pil)
                continue
            diffs.append(ours - pil)
    diffs = np.array(diffs)
    assert len(diffs) >= 30
    assert np.abs(diffs).max() < 1.0, str(np.round(diffs, 2).tolist())
    assert np.abs(diffs).mean() < 0.2, str(np.round(diffs, 2).tolist())


def test_kornia_jpeg_is_milder_than_libjpeg(shared_data):
    """Why ``baseline`` is the default: Kornia's differentiable rounding keeps part of the error."""
    im = Image.open(shared_data / "benchmark" / "Set14" / "HR" / "bridge.png")
    ref = np.asarray(im).astype(np.float64) / 255
    t = torch.from_numpy(ref).float()[None, None]
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    pil = _psnr(np.asarray(Image.open(buf)).astype(np.float64) / 255, ref)
    kornia = _psnr(np.round(jpeg(t, torch.tensor([95.0]), "kornia")[0, 0].numpy() * 255) / 255, ref)
    assert kornia - pil > 1.0


def test_jpeg_per_sample_quality_and_channels():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(
        torch.rand(1, 3, 10, 10, generator=g), size=40, mode="bicubic"
    )
    x = x.clamp(0, 1).expand(2, -1, -1, -1)
    out = jpeg(x, torch.tensor([30.0, 95.0]))
    err = (out - x).pow(2).mean((1, 2, 3))
    assert err[0] > 4 * err[1]  # quality 30 loses more than 95
    grey = jpeg(x[:, :2], torch.tensor([50.0, 50.0]))
    torch.testing.assert_close(grey[:, 1:2], jpeg(x[:, 1:2], torch.tensor([50.0, 50.0])))


# -- noise levels on flat patches ---------------------------------------------------------------
def test_gaussian_noise_sigma_on_flat_patches():
    gen = torch.Generator().manual_seed(0)
    sigma = torch.tensor([1.0, 5.0, 15.0, 30.0]) / 255
    flat = torch.full((4, 3, 128, 128), 0.5)
    for gray in (torch.zeros(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool)):
        noisy = gaussian_noise(flat, sigma, gray, gen)
        measured = (noisy - flat).std(dim=(1, 2, 3))
        assert ((measured / sigma - 1).abs() < 0.05).all(), measured * 255
    assert torch.equal(noisy[:, 0], noisy[:, 2])  # grey: one field for all channels


def test_poisson_sensor_and_rician_noise_levels():
    gen = torch.Generator().manual_seed(1)
    # left half a ramp of all 256 levels (so BasicSR scales counts by 256), right half flat at v
    v, scale = 128 / 255, torch.tensor([1.0, 2.5])
    img = torch.full((2, 1, 256, 512), v)
    img[..., :256] = torch.arange(256.0) / 255
    out = poisson_noise(img, scale, torch.zeros(2, dtype=torch.bool), gen)
    measured = (out - img)[..., 256:].std(dim=(1, 2, 3))
    expected = scale * math.sqrt(v * 256) / 256
    assert ((measured / expected - 1).abs() < 0.05).all()
    flat = torch.full((2, 3, 128, 128), 0.5)
    read, shot = torch.tensor([2.0, 0.5]) / 255, torch.tensor([3.0, 4.0]) / 255
    measured = (sensor_noise(flat, read, shot, gen) - flat).std(dim=(1, 2, 3))
    expected = torch.sqrt(read**2 + shot**2 * 0.5)
    assert ((measured / expected - 1).abs() < 0.05).all()
    sigma = torch.tensor([0.01, 0.04])
    measured = rician_noise(flat, sigma, gen).std(dim=(1, 2, 3))
    assert ((measured / sigma - 1).abs() < 0.05).all()
    background = rician_noise(torch.zeros(2, 1, 128, 128), sigma, gen).mean(dim=(1, 2, 3))
    assert ((background / (sigma * math.sqrt(math.pi / 2)) - 1).abs() < 0.05).all()  # Rayleigh


# -- pipelines: seeding, shapes, levels, errors ------------------------------------------------
PIPELINES = ("bicubic", "realesrgan", "fundus", "scanner")


@pytest.fixture(scope="module")
def hr_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    smooth = torch.nn.functional.interpolate(
        torch.rand(4, 3, 12, 12, generator=g), size=48, mode="bicubic"
    )
    return smooth.clamp(0, 1)


@pytest.mark.parametrize("name", PIPELINES)
def test_seeded_pipelines_are_bit_identical(name, hr_batch):
    deg = build_degradation(degradation_config(name))
    a = deg(deg.target(hr_batch), 4, step_generator(7, 100))
    torch.manual_seed(999)  # the global RNG plays no part
    b = deg(deg.target(hr_batch), 4, step_generator(7, 100))
    assert torch.equal(a, b)
    c = deg(deg.target(hr_batch), 4, step_generator(7, 101))
    assert torch.equal(a, c) == (name == "bicubic")


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_pipeline_shapes_and_levels(name, scale, channels, hr_batch):
    deg = build_degradation(degradation_config(name))
    lr = deg(hr_batch[:2, :channels], scale, step_generator(0, scale))
    assert lr.shape == (2, channels, 48 // scale, 48 // scale) and lr.dtype == torch.float32
    assert torch.equal(lr, torch.round(lr * 255) / 255) and lr.min() >= 0 and lr.max() <= 1
    lr16 = deg(hr_batch[:2, :channels], scale, step_generator(0, scale), bits=16)
    assert torch.equal(lr16, torch.round(lr16 * 65535) / 65535)


def test_realistic_lr_differs_from_bicubic_and_usm_sharpens(hr_batch):
    deg = build_degradation(degradation_config("realesrgan"))
    lr = deg(hr_batch, 4, step_generator(0, 0))
    bic = build_degradation(degradation_config("bicubic"))(hr_batch, 4)
    assert (lr - bic).abs().mean() > 2 / 255
    target = deg.target(hr_batch)
    assert target.shape == hr_batch.shape and not torch.equal(target, hr_batch)
    flat = torch.full((1, 3, 64, 64), 0.3)
    assert torch.equal(deg.target(flat), flat)  # no edges, nothing to sharpen


def test_batch_shared_resize_option(hr_batch):
    deg = build_degradation(degradation_config("realesrgan"), per_sample_resize=False)
    lr = deg(hr_batch, 2, step_generator(0, 3))
    assert lr.shape == (4, 3, 24, 24)


def _with(name: str, path: str, value):
    cfg = degradation_preset(name)
    node = cfg
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    "name, path, value, words",
    [
        ("realesrgan", "first.blur.sigma", [3.0, 0.2], "degradation.first.blur.sigma"),
        ("realesrgan", "first.blur.kernel_probs", [0.5, 0.5, 0.5, 0, 0, 0], "kernel_probs"),
        ("realesrgan", "first.blur.kernel_types", ["iso", "box"], "kernel_types"),
        ("realesrgan", "first.blur.kernel_size", [6, 21], "odd"),
        ("realesrgan", "first.blur.betag", [1.5, 4.0], "min <= 1 <= max"),
        ("realesrgan", "second.resize.probs", [0.3, 0.3], "resize.probs"),
        ("realesrgan", "second.blur_prob", 1.5, "degradation.second.blur_prob"),
        ("realesrgan", "final.resize_modes", ["lanczos"], "resize_modes"),
        ("realesrgan", "jpeg_codec", "mozjpeg", "jpeg_codec"),
        ("realesrgan", "first.noise.colour", 0.4, "unknown setting"),
        ("fundus", "jpeg.quality", [0, 95], "degradation.jpeg.quality"),
        ("fundus", "downsample", "nearest", "degradation.downsample"),
        ("scanner", "noise.rician_prob", -0.1, "degradation.noise.rician_prob"),
        ("scanner", "seed", -3, "degradation.seed"),
        ("realesrgan", "name", "bsrgan", "degradation.name"),
    ],
)
def test_bad_config_values_raise_naming_the_setting(name, path, value, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")):
        build_degradation(_with(name, path, value))


def test_missing_setting_and_bad_input_raise():
    cfg = degradation_preset("fundus")
    del cfg["noise"]
    with pytest.raises(ConfigError, match="missing setting.*noise"):
        build_degradation(cfg)
    deg = build_degradation(degradation_config("fundus"))
    with pytest.raises(DataError, match="multiple of scale=3"):
        deg(torch.rand(1, 3, 32, 32), 3)
    with pytest.raises(ConfigError, match="scale=5"):
        deg(torch.rand(1, 3, 40, 40), 5)
    with pytest.raises(DataError, match="float"):
        deg(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), 4)


# -- dihedral augmentation ----------------------------------------------------------------------
def test_per_sample_dihedral_equals_torch_where():
    """The per-sample views give what 0.1's torch.where selection gave for the same codes."""
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    codes = torch.randint(0, 8, (64,), generator=torch.Generator().manual_seed(3))
    c = codes.view(-1, 1, 1, 1)
    ref = torch.where((c & 1).bool(), x.flip(-1), x)
    ref = torch.where((c & 2).bool(), ref.flip(-2), ref)
    ref = torch.where((c & 4).bool(), ref.transpose(-1, -2), ref)
    assert torch.equal(random_dihedral(x, torch.Generator().manual_seed(3)), ref)
