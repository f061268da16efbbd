"""Network interpolation (ESRGAN, Wang et al., ECCVW 2018, sec. 3.4): blend a PSNR-oriented
and a GAN-trained network of the same architecture, ``theta = (1 - alpha) * theta_a + alpha * theta_b``,
to trade distortion (alpha = 0) for perceptual quality (alpha = 1) without retraining.

``python -m medsr.interpolate a=<PSNR weights> b=<GAN weights> alpha=0.8 out=<file>``; files in
any format ``load_pretrained`` reads. Files without a stored network description (official
releases) need ``model=<name>`` and ``scale=`` (plus ``model.net.*`` for non-default sizes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from medsr.errors import ConfigError, MedsrError, WeightsError
from medsr.models import build_model, load_pretrained, read_spec, save_weights

log = logging.getLogger("medsr.interpolate")


def interpolate_weights(
    state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """``(1 - alpha) * a + alpha * b`` for every floating-point tensor; other tensors must be equal.

    Args:
        state_a: state dict of the first network (alpha = 0 returns it).
        state_b: state dict of the second network, same keys and shapes.
        alpha: blend weight in [0, 1].

    Returns:
        A new state dict with ``state_a``'s dtypes; endpoints are reproduced exactly.

    Raises:
        ConfigError: alpha outside [0, 1]. WeightsError: different keys, shapes, or non-float
        entries (e.g. BatchNorm counters) that differ.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(
            f"alpha={alpha} is outside [0, 1]; 0 keeps a, 1 keeps b (ESRGAN uses 0.8)"
        )
    if set(state_a) != set(state_b):
        only_a, only_b = sorted(set(state_a) - set(state_b)), sorted(set(state_b) - set(state_a))
        raise WeightsError(
            f"the networks differ: keys only in a {only_a[:6]}, only in b {only_b[:6]}"
        )
    out: dict[str, Tensor] = {}
    for key, a in state_a.items():
        b = state_b[key]
        if a.shape != b.shape:
            raise WeightsError(
                f"the networks differ at {key}: a {tuple(a.shape)} vs b {tuple(b.shape)}"
            )
        if a.is_floating_point() and b.is_floating_point():
            # lerp in float32 at least; it returns b exactly at alpha = 1.
            work = torch.promote_types(a.dtype, torch.float32)
            out[key] = torch.lerp(a.to(work), b.to(work), float(alpha)).to(a.dtype)
        elif torch.equal(a, b):
            out[key] = a.clone()
        else:
            raise WeightsError(
                f"{key} holds non-float values that differ between a and b; they cannot be blended"
            )
    return out


def _network(cfg: DictConfig) -> nn.Module:
    """The network both files are loaded into: from a stored spec, else from ``model=``/``scale=``."""
    specs = [s for s in (read_spec(cfg.a), read_spec(cfg.b)) if s is not None]
    if len(specs) == 2 and (specs[0]["arch"], specs[0]["scale"], specs[0]["net"]) != (
        specs[1]["arch"],
        specs[1]["scale"],
        specs[1]["net"],
    ):
        raise ConfigError(
            f"a and b hold different networks ({specs[0]} vs {specs[1]}); both must be the same architecture and size"
        )
    if specs:
        spec = specs[0]
        if cfg.get("scale") is not None and cfg.scale != spec["scale"]:
            raise ConfigError(
                f"scale={cfg.scale} but the files are x{spec['scale']} networks; drop scale="
            )
        return build_model(spec["arch"], spec["scale"], **spec["net"])
    if cfg.get("model") is None or cfg.get("scale") is None:
        raise ConfigError(
            "a and b carry no network description (official releases do not); add model=<name> scale=<2|3|4>, "
            "e.g. model=rrdbnet scale=4 for RRDB_PSNR_x4.pth and RRDB_ESRGAN_x4.pth (and model.net.* for other sizes)"
        )
    return build_model(
        cfg.model.arch, cfg.scale, **OmegaConf.to_container(cfg.model.net, resolve=True)
    )


def interpolate(cfg: DictConfig) -> str:
    if cfg.get("a") is None or cfg.get("b") is None or cfg.get("out") is None:
        raise ConfigError(
            "give both networks and the output: a=<PSNR weights> b=<GAN weights> alpha=0.8 out=<file>"
        )
    net = _network(cfg)
    state_a = load_pretrained(net, cfg.a).state_dict()
    state_a = {k: v.clone() for k, v in state_a.items()}
    state_b = load_pretrained(net, cfg.b).state_dict()
    net.load_state_dict(interpolate_weights(state_a, state_b, cfg.alpha))
    path = save_weights(net, cfg.out)
    log.info("alpha=%s: %s x (1 - alpha) + %s x alpha -> %s", cfg.alpha, cfg.a, cfg.b, path)
    return str(path)


@hydra.main(version_base="1.3", config_path="conf", config_name="interpolate")
def main(cfg: DictConfig) -> None:
    try:
        print(interpolate(cfg), flush=True)
    except MedsrError as err:
        log.error("%s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
