"""EMA of the generator (model.ema_decay): the average follows its formula, validation and the
tested / exported weights are the average, the raw weights are kept for training on."""

from __future__ import annotations

import copy
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from helpers import cpu_trainer
from medsr.errors import ConfigError
from medsr.models import build_model, load_pretrained
from medsr.models.weights.export import export_generator
from medsr.models.weights.files import read_state_dict
from medsr.training import SRModule
from medsr.training.callbacks import EMAWeights

pytestmark = pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)")
DECAY = 0.5  # large steps, so the average is far from the raw weights after a few updates


class Patches(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int) -> None:
        g = torch.Generator().manual_seed(3)
        self.hr = torch.rand(n, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        hr = self.hr[i]
        return {"lr": torch.nn.functional.avg_pool2d(hr[None], 2)[0], "hr": hr, "name": f"p{i}"}


class Recorder(pl.Callback):
    """After EMAWeights in the callback list: the raw weights after every step, and the weights
    the network holds during validation."""

    def __init__(self) -> None:
        self.raw: list[dict] = []
        self.during_validation: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.raw.append(copy.deepcopy(pl_module.net.state_dict()))

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.during_validation.append(copy.deepcopy(pl_module.net.state_dict()))


def reference_ema(raw_steps: list[dict], decay: float) -> dict:
    """ema_1 = w_1, ema_t = decay ema_{t-1} + (1 - decay) w_t (BasicSR model_ema)."""
    ema = {k: v.clone() for k, v in raw_steps[0].items()}
    for weights in raw_steps[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * weights[k] for k in ema}
    return ema


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ema")
    pl.seed_everything(0)
    module = SRModule(
        build_model("edsr", 2, num_feat=8, num_block=1),
        2,
        optimizer=partial(torch.optim.Adam, lr=1e-2),
    )
    recorder = Recorder()
    checkpoint = ModelCheckpoint(
        dirpath=root, filename="best", monitor="val/psnr_y", mode="max", save_last=True
    )
    trainer = cpu_trainer(6, val_every=3, callbacks=[EMAWeights(DECAY), recorder, checkpoint])
    train = DataLoader(Patches(12, 16), batch_size=2, shuffle=True)
    trainer.fit(module, train, DataLoader(Patches(2, 24), batch_size=1))
    return {
        "module": module,
        "trainer": trainer,
        "recorder": recorder,
        "ckpt": root / "last.ckpt",
        "root": root,
    }


def assert_state_equal(actual: dict, expected: dict, **tol) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(
            actual[key], expected[key], msg=key, **(tol or {"rtol": 1e-6, "atol": 1e-7})
        )


def test_average_follows_the_ema_formula_and_ends_in_the_network(trained):
    raw = trained["recorder"].raw
    assert len(raw) == 6
    expected = reference_ema(raw, DECAY)
    assert_state_equal(
        trained["module"].net.state_dict(), expected
    )  # training ends with the average
    assert not torch.allclose(expected["conv_first.weight"], raw[-1]["conv_first.weight"])


def test_validation_runs_on_the_average(trained):
    raw, seen = trained["recorder"].raw, trained["recorder"].during_validation
    assert len(seen) == 2
    assert_state_equal(seen[0], reference_ema(raw[:3], DECAY))
    assert_state_equal(seen[1], reference_ema(raw[:6], DECAY))


def test_checkpoint_keeps_the_average_for_readers_and_the_raw_weights_for_training(trained):
    ckpt = torch.load(trained["ckpt"], weights_only=True)
    raw, ema = trained["recorder"].raw[-1], reference_ema(trained["recorder"].raw, DECAY)
    assert_state_equal(
        {k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}, ema
    )
    assert_state_equal(ckpt["medsr_ema"]["net"], raw, rtol=0, atol=0)
    assert ckpt["medsr_ema"]["decay"] == DECAY and int(ckpt["medsr_ema"]["n_averaged"]) == 6
    # What evaluate / predict / init_from load from the checkpoint: the average.
    net = load_pretrained(build_model("edsr", 2, num_feat=8, num_block=1), trained["ckpt"])
    assert_state_equal(net.state_dict(), ema)


def test_testing_the_checkpoint_uses_the_average(trained):
    module = SRModule(build_model("edsr", 2, num_feat=8, num_block=1), 2, optimizer=None)
    trainer = trained["trainer"]  # the EMA callback is still attached, as in medsr.train
    trainer.test(
        module, DataLoader(Patches(2, 24), batch_size=1), ckpt_path=trained["ckpt"], verbose=False
    )
    assert_state_equal(module.net.state_dict(), reference_ema(trained["recorder"].raw, DECAY))


def test_exported_file_holds_params_and_params_ema(trained, tmp_path):
    net = build_model("edsr", 2, num_feat=8, num_block=1)
    path = export_generator(net, trained["ckpt"], tmp_path / "EDSR_x2.pth")
    content = torch.load(path, weights_only=True)
    assert set(content) == {"params", "params_ema", "medsr_spec"}
    raw, ema = trained["recorder"].raw[-1], reference_ema(trained["recorder"].raw, DECAY)
    # Stored in the file's value range; read back through the loader for the comparison.
    assert_state_equal(
        load_pretrained(copy.deepcopy(net), path).state_dict(), ema
    )  # params_ema preferred
    as_raw = read_state_dict(path, param_key="params")[0]
    assert not torch.allclose(
        as_raw["conv_first.weight"], content["params_ema"]["conv_first.weight"]
    )
    assert_state_equal(
        load_pretrained(copy.deepcopy(net), path, param_key="params").state_dict(), raw
    )
    flat = export_generator(net, trained["ckpt"], tmp_path / "EDSR_x2.safetensors")
    assert_state_equal(load_pretrained(copy.deepcopy(net), flat).state_dict(), ema)


def test_bad_decay_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model.ema_decay=1.5 .*0.999"):
        EMAWeights(1.5)
