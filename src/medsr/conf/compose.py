"""Composing one option of a config group (``model=edsr``, ``degradation=realesrgan``) through
Hydra, for commands that name several in one run (``medsr.evaluate ckpts={edsr: ..., rcan: ...}``),
scripts and tests."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from medsr.errors import ConfigError


def option_config(group: str, name: str, required: bool = True) -> DictConfig | None:
    """The ``<group>=<name>`` config as Hydra composes it (its defaults applied), detached.

    Raises:
        ConfigError: no such option in ``group`` (None instead when not ``required``).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    def compose_option() -> DictConfig | None:
        options = GlobalHydra.instance().config_loader().get_group_options(group)
        if name not in options:
            if required:
                raise ConfigError(
                    f"{group}={name} is not a {group} config; use one of {', '.join(options)}"
                )
            return None
        cfg = compose(config_name="train", overrides=[f"{group}={name}"])
        return OmegaConf.create(OmegaConf.to_container(cfg[group], resolve=False))

    if GlobalHydra.instance().is_initialized():
        return compose_option()
    with initialize_config_module(config_module="medsr.conf", version_base="1.3"):
        return compose_option()


def model_config(name: str, required: bool = True) -> DictConfig | None:
    """``conf/model/<name>`` composed (see :func:`option_config`)."""
    return option_config("model", name, required)


def degradation_config(name: str) -> DictConfig:
    """``conf/degradation/<name>`` composed (see :func:`option_config`)."""
    return option_config("degradation", name)
