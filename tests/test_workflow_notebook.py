"""notebooks/quickstart.ipynb runs top to bottom on CPU (nbclient, as a user's Jupyter would): with
no earlier run it trains a short model, upscales the fundus sample and shows crops and scores."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image
from medsr.metrics import psnr_y
from medsr.ops import imresize, mod_crop, quantize

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_scores_and_crops(tmp_path, monkeypatch, samples_dir):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MEDSR_OUTPUTS", str(tmp_path))  # no earlier run: the notebook trains one
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    model = re.search(rf"^EDSR x(\d) from {re.escape(str(tmp_path / 'quickstart'))}", text, re.M)
    assert model, text  # the model trained here
    rows = dict(re.findall(r"^(bicubic|EDSR)\s+([\d.]+) ", text, re.M))
    assert set(rows) == {"bicubic", "EDSR"}, text
    # The bicubic row follows the benchmark protocol (independent recomputation).
    s = int(model[1])
    hr = mod_crop(to_float_tensor(read_image(samples_dir / "val" / "retina.jpg"))[None], s)
    bicubic = quantize(imresize(quantize(imresize(hr, 1 / s)), s))
    assert float(rows["bicubic"]) == pytest.approx(float(psnr_y(bicubic, hr, s)[0]), abs=0.006)
    (png,) = [o["data"]["image/png"] for o in outputs if o.output_type == "display_data"]
    figure = Image.open(io.BytesIO(base64.b64decode(png)))
    assert (
        figure.width >= 4 * 96 * 3 and figure.height >= 96 * 3
    )  # LR | bicubic | SR | HR crops at 3x
    assert (
        torch.load(next(tmp_path.glob("quickstart/*/*/checkpoints/*.ckpt")), weights_only=True)[
            "global_step"
        ]
        == 40
    )
