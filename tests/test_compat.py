"""Files written by medsr 0.1.0 (tests/fixtures/release_0_1_0, see its README) still load, give the
same outputs, and a training run resumes from the old checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_EDSR, run_module
from medsr.evaluation.networks import load_network
from medsr.models import read_spec

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1_0"
SPEC = {"arch": "edsr", "scale": 2, "net": {"num_feat": 8, "num_block": 1, "res_scale": 1.0}}


@pytest.mark.parametrize("name", ["EDSR_x2_f8b1_ema.ckpt", "EDSR_x2_f8b1_ema.pth"])
def test_weights_of_release_0_1_0_load_and_reproduce_their_outputs(name):
    expected = np.load(FIXTURES / "expected_sr.npz")
    assert read_spec(FIXTURES / name) == SPEC
    net, scale, tag = load_network(
        str(FIXTURES / name), None
    )  # no model=: the file describes itself
    assert (scale, tag) == (2, "EDSR")
    with torch.no_grad():
        out = net(torch.from_numpy(expected["input"])).numpy()
    np.testing.assert_array_equal(out, expected[Path(name).suffix[1:]])


@pytest.mark.slow
def test_training_resumes_from_a_release_0_1_0_checkpoint(tmp_path):
    run = run_module(
        "medsr.train",
        *TINY_EDSR,
        "debug=fast",
        "data=samples",
        "scale=2",
        "model.ema_decay=0.9",
        "trainer.max_steps=4",
        f"ckpt_path={FIXTURES / 'EDSR_x2_f8b1_ema.ckpt'}",
        run_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in run.stdout + run.stderr
    resumed = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert resumed["global_step"] == 4  # continued from the old run's step 2
