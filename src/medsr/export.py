"""Export a network: ``python -m medsr.export ckpt=<file> format=onnx|safetensors|pth output=<file>``.

``ckpt`` is any weights file medsr reads (a training checkpoint, an exported ``.pth`` or
``.safetensors``, an official release with ``model=<name> scale=<s>``). ``onnx`` writes the
network with dynamic batch, height and width (float32 ``(B, C, H, W)`` in [0, 1] in, ``(B, C, sH,
sW)`` out, as the PyTorch network; checked with onnxruntime before it is written) for
``medsr.predict backend=onnxruntime`` or any ONNX runtime; ``pth`` and ``safetensors`` write
medsr/BasicSR weights files (from a training checkpoint: ``params`` and ``params_ema``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from medsr._cli import run_cli
from medsr.errors import ConfigError
from medsr.evaluation.networks import load_network
from medsr.models import save_weights
from medsr.models.interpolation import Interpolation
from medsr.models.weights import export_generator
from medsr.models.weights.files import load_file

log = logging.getLogger("medsr.export")  # not __name__, which is "__main__" under python -m

FORMATS = {"onnx": (".onnx",), "safetensors": (".safetensors",), "pth": (".pth", ".pt")}


def _format(cfg: DictConfig, output: Path) -> str:
    fmt = cfg.get("format")
    if fmt is None:  # from the file name
        fmt = next((f for f, suffixes in FORMATS.items() if output.suffix in suffixes), None)
        if fmt is None:
            raise ConfigError(
                f"say which format to write: format=onnx|safetensors|pth (output={output.name})"
            )
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not valid; use one of {', '.join(FORMATS)}")
    if output.suffix not in FORMATS[fmt]:
        raise ConfigError(
            f"format={fmt} but output={output.name}; name the file *{FORMATS[fmt][0]}"
        )
    return fmt


def _training_checkpoint(path: str) -> dict | None:
    """The loaded medsr training checkpoint (Lightning ``.ckpt``), else None."""
    if Path(path).suffix != ".ckpt":
        return None
    obj, _ = load_file(Path(path))
    return obj if isinstance(obj, dict) and "state_dict" in obj else None


def export(cfg: DictConfig) -> Path:
    """Write the network of ``cfg.ckpt`` to ``cfg.output`` in ``cfg.format``; returns the path."""
    if not cfg.get("ckpt") or not cfg.get("output"):
        raise ConfigError(
            "give the weights and the file to write: ckpt=<file> output=<file> (format=onnx|safetensors|pth)"
        )
    output = Path(str(cfg.output)).expanduser()
    fmt = _format(cfg, output)
    net, scale, tag = load_network(str(cfg.ckpt), cfg.get("scale"), cfg.get("model"))
    if isinstance(net, Interpolation):
        raise ConfigError(f"model={net.mode} is an interpolation: there are no weights to export")
    if fmt == "onnx":
        from medsr.models.weights.onnx import export_onnx

        path = export_onnx(net, output, opset=int(cfg.get("opset", 18)))
    elif (checkpoint := _training_checkpoint(str(cfg.ckpt))) is not None:
        path = export_generator(net, checkpoint, output)  # params and params_ema
    else:
        path = save_weights(net, output)
    log.info("%s x%d from %s -> %s (%s)", tag, scale, cfg.ckpt, path, fmt)
    return path


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    print(run_cli(lambda: export(cfg), log), flush=True)


if __name__ == "__main__":
    main()
