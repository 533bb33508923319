"""`synth perlin`: anomalib's DRAEM Perlin anomalies on real good train images, as a dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
from click.testing import CliRunner

from synth import perlin as perlin_module
from synth.annotations import Annotations, ClassInfo
from synth.cli import main
from synth.dataset import Dataset, verify
from synth.errors import DataError
from synth.images import read_image
from synth.perlin import perlin_dataset
from synth.render import RenderSummary
from synth.writers import DatasetWriter

CLASSES = (ClassInfo(1, "crack"),)
MARK = (250, 7, 250)  # the colour of every image that must never be a source
SIZE = (40, 56)  # (h, w)
N, SEED, GOOD, MIN_AREA = 5, 7, 2, 60
GOOD_TRAIN = ("g0", "g1", "g2")


def _write_real(root: Path, grey: bool = False, good_train: tuple[str, ...] = GOOD_TRAIN) -> Path:
    """A tiny imported-like dataset: good train images of random texture, and a defective train
    image, val and test images (good and defective) all of colour MARK."""
    rng = np.random.default_rng(0)
    nothing = Annotations.from_instance_map(np.zeros(SIZE, np.uint16), {}, CLASSES)
    crack = np.zeros(SIZE, np.uint16)
    crack[5:9, 5:30] = 1
    cracked = Annotations.from_instance_map(crack, {1: 1}, CLASSES)
    marked = np.broadcast_to(np.array(MARK, np.uint8), (*SIZE, 3))
    with DatasetWriter(root, CLASSES, {"importer": "test"}) as writer:
        for image_id in good_train:
            texture = rng.integers(0, 200, (*SIZE, 1 if grey else 3), dtype=np.uint8)
            writer.write("train", image_id, np.repeat(texture, 3, axis=2) if grey else texture, nothing)
        writer.write("train", "d0", marked, cracked)
        for split in ("val", "test"):
            writer.write(split, f"{split}_good", marked, nothing)
            writer.write(split, f"{split}_bad", marked, cracked)
        writer.finalize()
    return root


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return _write_real(tmp_path_factory.mktemp("real") / "real")


@pytest.fixture(scope="module")
def made(real: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("perlin") / "perlin"
    perlin_dataset(real, out, N, SEED, good=GOOD, min_area=MIN_AREA, progress=False)
    return out


def _files(root: Path) -> dict[str, str]:
    """Every file of a dataset (its lock folder aside) and the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


def _make(real: Path, out: Path, **changes) -> RenderSummary:
    options = {"good": GOOD, "min_area": MIN_AREA, "progress": False} | changes
    return perlin_dataset(real, out, N, SEED, **options)


def test_the_dataset_is_whole_and_split_as_asked(made: Path):
    assert verify(made) == []
    dataset = Dataset(made)
    assert [c.name for c in dataset.classes] == ["defect"]
    assert dataset.info["splits"] == {"train": 4 + 2, "val": 1, "test": 0}  # round(5 × 0.8), round(2 × 0.8)
    assert dataset.info["good"] == {"train": 2, "val": 0, "test": 0}
    source = dataset.info["source"]
    assert source["generator"] == "anomalib.data.utils.generators.perlin.PerlinAnomalyGenerator"
    assert source["anomalib"] and "anomaly_source_path=None" in source["anomaly_texture"]
    assert source["real_good_train"] == len(GOOD_TRAIN)
    assert (source["n"], source["seed"], source["good"], source["min_area"]) == (N, SEED, GOOD, MIN_AREA)


def test_images_and_masks_are_the_generators_own(real: Path, made: Path):
    """Image 3 recomputed with its seeds straight through PerlinAnomalyGenerator: the same bytes."""
    index = 3
    rng = np.random.default_rng([SEED, index])
    source_id = GOOD_TRAIN[int(rng.integers(len(GOOD_TRAIN)))]
    source = read_image(real / "images" / "train" / f"{source_id}.png")
    image = torch.from_numpy(source).permute(2, 0, 1).float() / 255.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**63)))
        generator = PerlinAnomalyGenerator(probability=1.0)
        while True:
            augmented, mask = generator(image)
            if mask.sum() >= MIN_AREA:
                break
    expected = (augmented.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    sample = next(s for s in Dataset(made).samples("train") if s.id == f"{index:06d}")
    assert sample.meta["spec"]["source_id"] == source_id
    assert np.array_equal(sample.image(), expected)
    assert np.array_equal(sample.mask() > 0, mask[0].numpy() > 0.5)


def test_outside_the_mask_every_pixel_is_the_source_good_image(real: Path, made: Path):
    dataset = Dataset(made)
    for split in ("train", "val"):
        for sample in dataset.samples(split):
            source = read_image(real / "images" / "train" / f"{sample.meta['spec']['source_id']}.png")
            image, mask = sample.image(), sample.mask() > 0
            assert np.array_equal(image[~mask], source[~mask])
            if sample.good:
                assert not mask.any()
            else:
                assert mask.sum() >= MIN_AREA and not np.array_equal(image, source)
                labels = sample.annotations(dataset.classes)
                assert np.array_equal(labels.defect_mask(), mask)


def test_only_good_train_images_are_sources(made: Path):
    dataset = Dataset(made)
    samples = dataset.samples("train") + dataset.samples("val")
    assert {(s.meta["spec"]["source_split"], s.meta["spec"]["source_id"]) for s in samples} <= {
        ("train", i) for i in GOOD_TRAIN
    }
    for sample in samples:
        assert not (sample.image() == MARK).all(axis=2).any(), sample.id


def test_a_grey_source_stays_grey(tmp_path: Path):
    real = _write_real(tmp_path / "real", grey=True)
    perlin_dataset(real, tmp_path / "out", 4, 0, min_area=MIN_AREA, progress=False)
    dataset = Dataset(tmp_path / "out")
    for sample in dataset.samples("train") + dataset.samples("val"):
        image = sample.image()
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


def test_two_runs_and_an_interrupted_one_write_the_same_bytes(real, made, tmp_path, monkeypatch):
    _make(real, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(made)

    calls = []
    anomaly = perlin_module.perlin_anomaly

    def interrupted(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return anomaly(*args)

    monkeypatch.setattr(perlin_module, "perlin_anomaly", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _make(real, tmp_path / "resumed")
    monkeypatch.undo()
    summary = _make(real, tmp_path / "resumed")
    assert (summary.rendered, summary.skipped) == (N + GOOD - 2, 2)
    assert _files(tmp_path / "resumed") == _files(made)

    for kind in ("meta", "images"):  # a sample lost (its meta first), and one half-written
        (tmp_path / "resumed" / kind / "train" / f"000001.{'json' if kind == 'meta' else 'png'}").unlink()
    (tmp_path / "resumed" / "meta" / "val" / "000004.json").unlink()
    summary = _make(real, tmp_path / "resumed")
    assert (summary.rendered, summary.skipped) == (2, N + GOOD - 2)
    assert _files(tmp_path / "resumed") == _files(made)


def test_other_parameters_are_refused_unless_overwritten(real: Path, tmp_path: Path):
    _make(real, tmp_path / "out", good=0)
    before = _files(tmp_path / "out")
    with pytest.raises(DataError, match=r"made with other parameters \(seed 7 -> 8\).*--overwrite"):
        perlin_dataset(real, tmp_path / "out", N, SEED + 1, min_area=MIN_AREA, progress=False)
    assert _files(tmp_path / "out") == before
    perlin_dataset(real, tmp_path / "out", N, SEED + 1, min_area=MIN_AREA, overwrite=True, progress=False)
    assert Dataset(tmp_path / "out").info["source"]["seed"] == SEED + 1


@pytest.fixture(scope="module")
def bad(real: Path, tmp_path_factory) -> Path:
    """Folders the command must refuse: not a dataset, and datasets without a good train image."""
    root = tmp_path_factory.mktemp("bad")
    (root / "folder").mkdir()
    (root / "folder" / "a.png").write_bytes((real / "images" / "train" / "g0.png").read_bytes())
    _write_real(root / "no_good", good_train=())
    with DatasetWriter(root / "empty_train", CLASSES, {"importer": "test"}) as writer:
        nothing = Annotations.from_instance_map(np.zeros(SIZE, np.uint16), {}, CLASSES)
        writer.write("val", "v", np.zeros((*SIZE, 3), np.uint8), nothing)
        writer.finalize()
    return root


BAD = {
    "a folder that is not a dataset": (
        "--real {bad}/folder",
        1,
        "folder: not a defectsynth dataset (no dataset.json)",
    ),
    "a missing folder": ("--real {bad}/nope", 2, "Invalid value for '--real'"),
    "no good train image": (
        "--real {bad}/no_good",
        1,
        "the train split of {bad}/no_good has no good image: none of its 1 train samples",
    ),
    "an empty train split": (
        "--real {bad}/empty_train",
        1,
        "the train split of {bad}/empty_train has no good image",
    ),
    "--n 0": ("--real {real} --n 0", 2, "Invalid value for '--n': 0 is not in the range x>=1"),
    "--split not adding up to 1": ("--real {real} --split 0.7 0.2", 1, "split: the train and val fractions"),
    "--min-area above the image": (
        "--real {real} --min-area 5000",
        1,
        "--min-area 5000 px: larger than the good",
    ),
    "--out the --real": ("--real {real} --out {real}", 1, "is also an input of this command"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(real: Path, bad: Path, tmp_path: Path, case: str):
    options, status, message = BAD[case]
    options = options.format(bad=bad, real=real)
    line = f"perlin --out {tmp_path / 'out'} --n 2 --seed 0 {options}".split()
    before = _files(bad) | _files(real)
    result = CliRunner().invoke(main, line)
    assert result.exit_code == status, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and message.format(bad=bad) in last, result.output
    assert "Traceback" not in result.output and (status == 2 or result.output.count("\n") == 1)
    assert not (tmp_path / "out").exists()
    assert _files(bad) | _files(real) == before
