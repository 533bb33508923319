"""Sequential PatchCore inside anomalib: Engine.fit and Engine.test on a Folder datamodule."""

import numpy as np
import pytest
import torch
from PIL import Image

from train.patchcore import PatchCoreConfig

pytest.importorskip("anomalib")


def test_engine_fits_and_tests_on_a_folder_datamodule(tmp_path):
    from anomalib.data import Folder
    from anomalib.engine import Engine

    from tests.test_patchcore import stripes
    from train.patchcore.lightning_model import SequentialPatchcore

    for folder in ("good", "bad", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(10):
        Image.fromarray(stripes(i)).save(tmp_path / "good" / f"{i:03d}.png")
    for i in range(4):
        image, mask = stripes(20 + i), np.zeros((48, 48), np.uint8)
        image[10 + 4 * i : 20 + 4 * i, 12:22] = [255, 0, 255]
        mask[10 + 4 * i : 20 + 4 * i, 12:22] = 255
        Image.fromarray(image).save(tmp_path / "bad" / f"{i:03d}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i:03d}.png")
    datamodule = Folder(
        name="stripes",
        root=tmp_path,
        normal_dir="good",
        abnormal_dir="bad",
        mask_dir="masks",
        train_batch_size=4,
        eval_batch_size=4,
        num_workers=0,
        normal_split_ratio=0.5,
        seed=0,
    )
    config = PatchCoreConfig(image_size=(48, 48), coreset_size=32, epochs=20, sigma=1)
    model = SequentialPatchcore(config, visualizer=False)
    engine = Engine(default_root_dir=tmp_path / "results", logger=False, accelerator="cpu")
    engine.fit(model=model, datamodule=datamodule)
    assert engine.trainer.current_epoch < 20  # stopped early at a fixed point
    (results,) = engine.test(model=model, datamodule=datamodule)
    assert results["image_AUROC"] > 0.9
    assert results["pixel_AUROC"] > 0.9

    coreset = model.to_coreset()
    assert coreset.points.shape == (32, 152)
    images = [stripes(50), stripes(51)]
    images[1][20:30, 20:30] = [255, 0, 255]
    _, scores = coreset.predict(images)
    assert scores[1] > scores[0]
    assert torch.equal(SequentialPatchcore.from_coreset(coreset).model.points, coreset.points)
