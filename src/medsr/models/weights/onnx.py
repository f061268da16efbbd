"""ONNX: a medsr network as a file any ONNX runtime can run, and such a file back as a network.

The file keeps the network's own contract: input ``lr``, float32 ``(B, C, H, W)`` in [0, 1];
output ``sr``, float32 ``(B, C, s*H, s*W)``, not clamped. Batch, height and width are dynamic.
Its metadata holds the ``medsr_spec`` that rebuilds the network, the scale and the receptive
radius, so :class:`OnnxNetwork` tiles without seams exactly as the PyTorch network does.

Export uses torch's ``torch.export``-based exporter (the TorchScript one is deprecated) and
checks the file with onnxruntime on two sizes it was not traced at: a size-dependent Python
branch frozen at trace time fails the export instead of shipping a file that is wrong at
other sizes. Needs the ``deploy`` extra (``pip install medsr[deploy]``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from medsr.errors import ConfigError, WeightsError
from medsr.models.interpolation import Interpolation
from medsr.ops.tiling import receptive_radius

OPSET = 18  # the lowest opset torch's exporter writes; ONNX Runtime >= 1.14 runs it
MIN_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
# Traced at an odd, non-square size that equals no window or patch size, so size-dependent
# branches (RRDBNet x2 reflect-pads odd sides, windowed attention pads to its window) are
# traced on their general path; then checked at an even and another odd size.
TRACE_SIZE = (35, 37)
CHECK_SIZES = ((24, 30), (19, 41))
TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| on [0, 1] images
_TWO_GIB = 2**31
_EXTRA_HINT = (
    "install the deploy extra: pip install 'medsr[deploy]' (onnx, onnxscript, onnxruntime)"
)


def _channels(net: nn.Module) -> int:
    spec = getattr(net, "medsr_spec", None) or {}
    return int((spec.get("net") or {}).get("num_in_ch", 3))


def export_onnx(net: nn.Module, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write ``net`` as an ONNX file with dynamic batch, height and width (atomically).

    Args:
        net: a learned network (``build_model`` result, weights loaded); not modified.
        path: the ``.onnx`` file to write.
        opset: ONNX opset, at least 18 (torch's exporter writes no older one).

    Returns:
        The path written.

    Raises:
        ConfigError: an interpolation baseline (nothing to export), a low opset, or missing packages.
        WeightsError: the exported graph does not reproduce the network within ``TOLERANCE``.
    """
    path = Path(path)
    if isinstance(net, Interpolation):
        raise ConfigError(
            f"model={net.mode} is an interpolation, not a network: nothing to export. "
            f"Run it directly (medsr.predict model={net.mode} scale=<s>)"
        )
    if opset < OPSET:
        raise ConfigError(
            f"opset={opset} is too old: torch's ONNX exporter writes opset {OPSET} or newer"
        )
    if path.suffix != ".onnx":
        raise ConfigError(f"cannot write ONNX to {path.name}: use a .onnx file name")
    onnx = _require("onnx")
    work = copy.deepcopy(net).float().cpu().eval()
    spec = getattr(net, "medsr_spec", None)
    channels = _channels(work)
    example = torch.rand(2, channels, *TRACE_SIZE, generator=torch.Generator().manual_seed(0))
    dims = {
        0: torch.export.Dim("batch"),
        2: torch.export.Dim("height"),
        3: torch.export.Dim("width"),
    }
    big = sum(p.numel() * p.element_size() for p in work.parameters()) > _TWO_GIB * 0.9
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        traced = Path(tmp) / "traced.onnx"
        with _quiet_exporter(), torch.no_grad():
            try:
                torch.onnx.export(
                    work, (example,), str(traced), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    opset_version=opset, dynamo=True, dynamic_shapes=(dims,), external_data=big,
                )  # fmt: skip
            except Exception as err:  # the exporter raises many private types
                raise WeightsError(
                    f"ONNX export of {_describe(work)} failed: {_first_line(err)}"
                ) from None
        model = onnx.load(str(traced))
        meta = {
            "medsr_spec": json.dumps(spec) if spec is not None else "",
            "scale": str(_scale(work, spec)),
            "receptive_radius": str(receptive_radius(work, channels=channels)),
            "contract": "lr: float32 (B, C, H, W) in [0, 1] -> sr: float32 (B, C, sH, sW), unclamped",
        }
        onnx.helper.set_model_props(model, meta)
        staged = Path(tmp) / path.name
        onnx.save(model, str(staged), save_as_external_data=big, location=f"{path.name}.data")
        _verify(work, staged, channels)
        if big:
            os.replace(Path(tmp) / f"{path.name}.data", path.parent / f"{path.name}.data")
        os.replace(staged, path)
    return path


def _scale(net: nn.Module, spec: dict | None) -> int:
    if spec and "scale" in spec:
        return int(spec["scale"])
    with torch.no_grad():
        return int(net(torch.zeros(1, _channels(net), 8, 8)).shape[-1] // 8)


def _verify(net: nn.Module, path: Path, channels: int) -> None:
    """The file must reproduce ``net`` at sizes it was not traced at."""
    runner = OnnxNetwork(path)
    gen = torch.Generator().manual_seed(1)
    for h, w in CHECK_SIZES:
        x = torch.rand(3, channels, h, w, generator=gen)
        with torch.no_grad():
            want = net(x)
        try:
            got = runner(x)
            problem = f"shape {tuple(got.shape)} instead of {tuple(want.shape)}"
            if got.shape == want.shape:
                diff = (got - want).abs().max().item()
                problem = f"max difference {diff:.3g}" if not diff <= TOLERANCE else ""
        except Exception as err:  # onnxruntime raises its own types for shape mismatches
            problem = _first_line(err)
        if problem:
            raise WeightsError(
                f"the ONNX export of {_describe(net)} does not reproduce it on a {h}x{w} input "
                f"({problem}): its forward() probably branches on the input size in Python. "
                "Nothing was written"
            )


class OnnxNetwork(nn.Module):
    """An exported network run by onnxruntime, usable wherever medsr runs a PyTorch network.

    Takes and returns torch tensors (the contract of :func:`export_onnx`); carries the file's
    ``medsr_spec``, ``scale`` and ``receptive_radius`` so ``medsr.ops.tiled_forward`` tiles it
    as it tiles the original network.

    Args:
        path: a file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        threads: intra-op threads (0: onnxruntime's default, one per core).
    """

    def __init__(
        self, path: str | os.PathLike, providers: list[str] | None = None, threads: int = 0
    ) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"ONNX file not found: {path}; check ckpt=")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        available = ort.get_available_providers()
        providers = providers or [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:
            raise WeightsError(f"{path}: not a readable ONNX model ({_first_line(err)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "scale" not in meta:
            raise WeightsError(
                f"{path}: not written by medsr's export (no scale in its metadata); export it with medsr.export"
            )
        self.path = path
        self.scale = int(meta["scale"])
        self.receptive_radius = float(meta.get("receptive_radius", "inf"))
        self.medsr_spec = json.loads(meta["medsr_spec"]) if meta.get("medsr_spec") else None

    def forward(self, x: Tensor) -> Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(out).to(x.device)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            f"ONNX export and inference need the package {module!r}: {_EXTRA_HINT}"
        ) from None


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints progress lines, notes of its graph optimiser, and warnings about
    torchvision ops medsr never uses."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated"
            )
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _describe(net: nn.Module) -> str:
    spec = getattr(net, "medsr_spec", None)
    return f"{spec['arch']} x{spec['scale']}" if spec else type(net).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
