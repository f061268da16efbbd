"""Composing one option of a config group (``model=edsr``) through Hydra, for commands that
name several models in one run (``medsr.evaluate ckpts={edsr: ..., rcan: ...}``)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from medsr.errors import ConfigError


def model_config(name: str, required: bool = True) -> DictConfig | None:
    """The ``model=<name>`` config as Hydra composes it (its defaults applied), detached.

    Raises:
        ConfigError: no such option in the ``model`` group (None instead when not ``required``).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    def compose_model() -> DictConfig | None:
        options = GlobalHydra.instance().config_loader().get_group_options("model")
        if name not in options:
            if required:
                raise ConfigError(
                    f"model={name} is not a model config; use one of {', '.join(options)}"
                )
            return None
        cfg = compose(config_name="evaluate", overrides=[f"model={name}"])
        return OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=False))

    if GlobalHydra.instance().is_initialized():
        return compose_model()
    with initialize_config_module(config_module="medsr.conf", version_base="1.3"):
        return compose_model()
