"""Network interpolation (ESRGAN, Wang et al., ECCVW 2018, sec. 3.4): blend a PSNR-oriented
and a GAN-trained network of the same architecture, ``theta = (1 - alpha) * theta_a + alpha * theta_b``,
to trade distortion (alpha = 0) for perceptual quality (alpha = 1) without retraining.

``python -m medsr.interpolate a=<PSNR weights> b=<GAN weights> alpha=0.8 out=<file>``; files in
any format ``load_pretrained`` reads. Files without a stored network description (official
releases) need ``model=<name>`` and ``scale=`` (plus ``model.net.*`` for non-default sizes).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf
from torch import nn

from medsr._cli import run_cli
from medsr.errors import ConfigError
from medsr.models import build_model, load_pretrained, read_spec, save_weights
from medsr.models.weights.blend import interpolate_weights

log = logging.getLogger("medsr.interpolate")  # not __name__, which is "__main__" under python -m


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
    print(run_cli(lambda: interpolate(cfg), log), flush=True)


if __name__ == "__main__":
    main()
