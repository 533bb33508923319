"""Sequential PatchCore end to end on tiny images: features, training, files, scoring, CLI."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synth.errors import ConfigError, DataError  # noqa: E402
from train.cli import main  # noqa: E402
from train.patchcore import (  # noqa: E402
    Coreset,
    IncompatibleCoresetError,
    PatchCoreConfig,
    PatchCoreError,
    finetune,
    list_images,
    meld,
    pretrain,
)

SMALL = PatchCoreConfig(image_size=(48, 48), coreset_size=48, epochs=2, batch_size=4, sigma=1)


def stripes(seed: int, size: int = 48) -> np.ndarray:
    """Grey horizontal stripes with mild noise: texture A."""
    rng = np.random.default_rng(seed)
    rows = 120 + 60 * np.sin(np.arange(size) / 2.0 + rng.uniform(0, 6))
    image = np.repeat(rows[:, None], size, axis=1) + rng.normal(0, 4, (size, size))
    return np.repeat(image[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)


def checker(seed: int, size: int = 48) -> np.ndarray:
    """Red/blue checkerboard: texture B, far from A in feature space."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cells = ((yy // 6 + xx // 6) % 2).astype(bool)
    image = np.where(cells[..., None], [200, 30, 30], [30, 30, 200]) + rng.normal(0, 4, (size, size, 3))
    return image.clip(0, 255).astype(np.uint8)


def write(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def texture_a(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("a"), [stripes(i) for i in range(6)])


@pytest.fixture(scope="module")
def texture_b(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("b"), [checker(i) for i in range(6)])


@pytest.fixture(scope="module")
def coreset_a(texture_a) -> Coreset:
    return pretrain(texture_a, SMALL)


def test_lite0_weights_map_onto_timm_and_classify_a_cat():
    import timm
    from skimage import data

    from train.patchcore.features import lite0_to_timm, package_weights_path

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(lite0_to_timm(state), strict=True)
    x = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        top = int(model.eval()((x - mean) / std).argmax())
    assert 281 <= top <= 285  # ImageNet's domestic cat classes


def test_pretrain_is_deterministic_and_records_its_data(texture_a, coreset_a):
    again = pretrain(texture_a, SMALL)
    assert torch.equal(again.points, coreset_a.points)
    assert coreset_a.points.shape == (48, 152)
    (record,) = coreset_a.datasets
    assert record["role"] == "pretrain" and record["images"] == 5 and len(record["sha256"]) == 16
    other_seed = pretrain(texture_a, PatchCoreConfig(**{**SMALL.to_dict(), "seed": 1}))
    assert not torch.equal(other_seed.points, coreset_a.points)


def test_training_stops_early_when_an_epoch_changes_nothing(texture_a):
    config = PatchCoreConfig(**{**SMALL.to_dict(), "epochs": 30, "augmentations": 0})
    coreset = pretrain(texture_a, config)
    assert coreset.epochs < 30
    assert coreset.datasets[0]["epochs"] == coreset.epochs


def test_defect_scores_higher_and_map_points_at_it(coreset_a):
    clean = stripes(100)
    defect = clean.copy()
    defect[20:28, 30:38] = [255, 0, 255]
    maps, scores = coreset_a.predict([clean, defect, stripes(101, size=80)[:70]])
    assert [m.shape for m in maps] == [(48, 48), (48, 48), (70, 80)]
    assert all(m.dtype == np.float32 for m in maps)
    assert scores == pytest.approx([m.max() for m in maps])
    assert scores[1] > 1.5 * scores[0]
    y, x = np.unravel_index(np.argmax(maps[1]), maps[1].shape)
    assert 16 <= y <= 32 and 26 <= x <= 42


def test_holdout_threshold_sits_above_held_out_good_images(texture_a, coreset_a):
    held = [stripes(i) for i in range(6)]
    assert coreset_a.threshold is not None
    _, scores = coreset_a.predict(held)
    assert coreset_a.threshold >= scores.min()
    coreset = Coreset(coreset_a.points, coreset_a.config, coreset_a.weights_id)
    assert coreset.calibrate(held) == pytest.approx(float(scores.max()))


def test_finetune_moves_coverage_to_the_new_texture(texture_b, coreset_a):
    new = [checker(50 + i) for i in range(3)]
    before = coreset_a.predict(new)[1]
    tuned = finetune(coreset_a, texture_b, epochs=2)
    after = tuned.predict(new)[1]
    assert after.max() < 0.5 * before.min()
    assert [d["role"] for d in tuned.datasets] == ["pretrain", "finetune"]
    assert tuned.epochs > coreset_a.epochs


def test_meld_of_disjoint_clusters_covers_both():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=g)
    b = torch.randn(400, 8, generator=g) + 20
    config = PatchCoreConfig(coreset_size=32)
    coresets = []
    for cluster in (a, b):
        from train.patchcore import SequentialCoreset

        state = SequentialCoreset(32, 8)
        state.add(cluster)
        coresets.append(Coreset(state.stored().clone(), config, "test-weights"))
    melded = meld(coresets, size=32)
    assert melded.size == 32
    near_b = (melded.points - 20).norm(dim=1) < (melded.points).norm(dim=1)
    assert 8 <= int(near_b.sum()) <= 24
    for cluster in (a, b):
        assert torch.cdist(cluster, melded.points).min(dim=1).values.max() < 6  # clusters: 20 apart


def test_save_load_round_trip_and_incompatible_backbone(tmp_path, coreset_a):
    path = coreset_a.save(tmp_path / "a.safetensors")
    loaded = Coreset.load(path, expect=SMALL)
    assert torch.equal(loaded.points, coreset_a.points)
    assert loaded.metadata() == coreset_a.metadata()
    assert loaded.config == coreset_a.config

    foreign = Coreset(
        torch.zeros(4, 152),
        PatchCoreConfig(backbone="resnet18", weights="timm", layers=("layer2", "layer3")),
        "timm:resnet18.a1_in1k",
    )
    foreign_path = foreign.save(tmp_path / "r.safetensors")
    with pytest.raises(IncompatibleCoresetError, match="backbone: 'resnet18'"):
        Coreset.load(foreign_path, expect=SMALL)
    with pytest.raises(IncompatibleCoresetError, match="layers"):
        meld([coreset_a, Coreset.load(foreign_path)])


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PatchCoreError, match="no images found"):
        pretrain(tmp_path / "empty", SMALL)
    broken = write(tmp_path / "broken", [stripes(0)])
    (broken / "001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="001.png: not a readable image"):
        pretrain(broken, SMALL)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(PatchCoreError, match="not a Sequential PatchCore coreset"):
        Coreset.load(tmp_path / "junk.safetensors")


def test_a_canonical_dataset_gives_its_good_train_images(tmp_path, tiny_scene):
    from synth.config import parse_config
    from synth.dataset import Dataset
    from synth.render import render_dataset

    tiny_scene["splits"]["train"] = {"count": 8, "good_fraction": 0.5}
    render_dataset(parse_config(tiny_scene), tmp_path, renderer="raster", progress=False)
    good = [s.image_path for s in Dataset(tmp_path).samples("train") if s.good]
    assert 0 < len(good) < 8  # the defective train images are left out
    assert list_images(tmp_path) == good
    # a glob over the dataset tree would take masks, instance maps and test images as good
    with pytest.raises(PatchCoreError, match=r"--pattern '\*\.png' applies to plain image folders"):
        list_images(tmp_path, pattern="*.png")
    result = CliRunner().invoke(
        main,
        ["pretrain", "patchcore", "--data", str(tmp_path), "--pattern", "*.png", "--out", "x.safetensors"],
    )
    assert result.exit_code == 1 and "applies to plain image folders" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(PatchCoreError, match="format None"):
        list_images(tmp_path)


def test_cli_pretrain_finetune_meld(tmp_path, texture_a, texture_b):
    runner = CliRunner()
    a, b, m = (str(tmp_path / f"{n}.safetensors") for n in "abm")
    common = ["--image-size", "48", "--size", "32", "--epochs", "1"]
    result = runner.invoke(main, ["pretrain", "patchcore", "--data", str(texture_a), "--out", a, *common])
    assert result.exit_code == 0, result.output
    assert "32 points x 152 features" in result.output
    result = runner.invoke(
        main, ["finetune", "patchcore", "--coreset", a, "--data", str(texture_b), "--out", b]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["meld", "patchcore", "--coreset", a, "--coreset", b, "--size", "40", "--out", m]
    )
    assert result.exit_code == 0, result.output
    assert Coreset.load(m).size == 40
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["pretrain", "patchcore", "--data", str(tmp_path / "empty"), "--out", a])
    assert result.exit_code == 1
    assert "no images found" in result.output and "Traceback" not in result.output


def test_meld_of_fewer_points_than_the_size_keeps_them_once():
    g = torch.Generator().manual_seed(1)
    config = PatchCoreConfig(coreset_size=8)
    small = Coreset(torch.randn(8, 4, generator=g), config, "test-weights")
    melded = meld([small, small], size=100)
    assert melded.size == 8
    assert torch.equal(melded.points, small.points)


def test_the_device_is_chosen_at_use_not_stored(tmp_path, coreset_a):
    assert "device" not in coreset_a.metadata()["config"]
    path = coreset_a.save(tmp_path / "a.safetensors")
    assert Coreset.load(path, device="cpu").config.device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device 'cuda': not available on this machine"):
            Coreset.load(path, device="cuda")
    with pytest.raises(ConfigError, match="--device 'gpu0': not available on this machine"):
        PatchCoreConfig(device="gpu0")


def test_finetune_honours_a_coreset_size_override(texture_b, coreset_a):
    tuned = finetune(coreset_a, texture_b, epochs=1, coreset_size=coreset_a.size + 16)
    assert tuned.size == coreset_a.size + 16 == tuned.config.coreset_size
    shrunk = finetune(coreset_a, texture_b, epochs=1, coreset_size=20)
    assert shrunk.size == 20 == shrunk.config.coreset_size


def test_a_directory_as_coreset_output_is_refused_before_training(tmp_path, texture_a):
    result = CliRunner().invoke(
        main, ["pretrain", "patchcore", "--data", str(texture_a), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "is a directory" in result.output
