"""Which runtime applies the network: PyTorch (any weights file) or onnxruntime (an ``.onnx``
file written by ``python -m medsr.export``), behind the same :class:`Upscaler` (tiling, 16-bit,
TTA). The ONNX file carries its network description and scale; it runs in float32."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from medsr.errors import ConfigError
from medsr.evaluation.networks import load_network, resolve_device
from medsr.models.registry import display_name

BACKENDS = ("torch", "onnxruntime")


def load_for_backend(
    backend: str,
    ckpt: str | None,
    scale: int | None,
    model: Mapping | None,
    device: str | None,
    precision: str,
    threads: int = 0,
) -> tuple[nn.Module, int, str, torch.device]:
    """(network, scale, name for logs and tables, device the Upscaler feeds) for ``backend``.

    Args:
        backend: ``torch`` or ``onnxruntime``.
        ckpt: weights file (``.onnx`` for onnxruntime).
        scale: requested scale; None takes the file's.
        model: model config for files without a stored description (PyTorch backend only).
        device: ``auto``, ``cpu``, ``cuda``...; onnxruntime picks its own provider (CUDA when
            onnxruntime-gpu sees a GPU, else CPU) and is fed from host memory.
        precision: ``auto``/``32`` (onnxruntime runs the exported float32 graph).
        threads: onnxruntime intra-op threads (0: its default).
    """
    backend = str(backend)
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not valid; use one of {', '.join(BACKENDS)}")
    is_onnx = ckpt is not None and Path(str(ckpt)).suffix.lower() == ".onnx"
    if backend == "torch":
        if is_onnx:
            raise ConfigError(
                f"ckpt={ckpt} is an ONNX model: add backend=onnxruntime (or give PyTorch weights)"
            )
        net, scale, tag = load_network(ckpt, scale, model)
        return net, scale, tag, resolve_device(device)
    if not is_onnx:
        raise ConfigError(
            f"backend=onnxruntime runs .onnx files, not ckpt={ckpt}; export one with "
            "python -m medsr.export ckpt=<weights> format=onnx output=<file.onnx>"
        )
    if str(precision) not in ("auto", "32"):
        raise ConfigError(
            f"precision={precision} does not apply to backend=onnxruntime (the exported graph is "
            "float32); drop precision="
        )
    from medsr.models.weights.onnx import OnnxNetwork

    net = OnnxNetwork(ckpt, threads=threads)
    if scale is not None and int(scale) != net.scale:
        raise ConfigError(f"{ckpt} is a x{net.scale} network but scale={scale}; drop scale=")
    arch = (net.medsr_spec or {}).get("arch")
    try:
        name = display_name(arch) if arch else "ONNX model"
    except ConfigError:  # an architecture this install does not have: onnxruntime needs none
        name = arch
    return net, net.scale, f"{name} (onnxruntime)", torch.device("cpu")
