"""Bad input to every command: one clear line naming the culprit, no traceback, nothing lost.

Each case runs a command line against a small workspace (a scene, a rendered dataset, a
coreset, YOLO weights that are not weights, an experiment) and asserts the exit status, that
the message names the file, field or option at fault, that no Python traceback escaped, and
that every file of the workspace is byte-identical afterwards. A failed run writes nothing new
either, except the offline settings folder that ultralytics gets once per process
(`<run>/ultralytics-config`, see train/yolo/offline.py).
Import formats have their own file, tests/test_import_bad_inputs.py.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from evaluate.cli import main as evaluate_main
from synth.cli import main as synth_main
from tests.conftest import TINY_SCENE
from train.cli import main as train_main

CLIS = {"synth": synth_main, "train": train_main, "evaluate": evaluate_main}


def _scene(**changes) -> dict:
    scene = copy.deepcopy(TINY_SCENE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = scene
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    return scene


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace: files every case may read and none may change."""
    from synth.config import parse_config
    from synth.render import render_dataset
    from train.patchcore import PatchCoreConfig, pretrain

    root = tmp_path_factory.mktemp("ws")
    (root / "scene.yaml").write_text(yaml.safe_dump(TINY_SCENE))
    render_dataset(parse_config(TINY_SCENE), root / "data", renderer="raster", progress=False)
    defects = parse_config(_scene(**{"splits.train.good_fraction": 0.0}))
    render_dataset(defects, root / "defects", renderer="raster", progress=False)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    config = PatchCoreConfig(image_size=(32, 32), coreset_size=16, epochs=1, holdout=0.0)
    pretrain(images, config).save(root / "coreset.safetensors")
    (root / "empty").mkdir()
    for name, array in (("good/g.png", rng.integers(0, 255, (40, 40))), ("crack/c.png", np.zeros((40, 40)))):
        (root / "source" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array.astype(np.uint8)).save(root / "source" / name)
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 16)).save(root / "source" / "crack" / "c_mask.png")
    _classless_dataset(root / "noclass")
    (root / "junk.safetensors").write_bytes(b"not a coreset")
    (root / "junk.pt").write_bytes(b"not weights")
    (root / "text.yaml").write_text("just: [unclosed")
    (root / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "empty.yaml").write_text("")
    (root / "results").mkdir()
    (root / "results" / "table.md").write_text("| scenario | F1_px |\n|---|---|\n| real_only | 0.412 |\n")
    for name, changes in SCENES.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump(_scene(**changes)))
    experiment = {
        "name": "bad",
        "real": {"format": "folders", "src": str(images)},
        "synthetic": {"scene": str(root / "scene.yaml"), "n": 8, "renderer": "raster"},
        "patchcore": {"coreset_size": 16, "image_size": [32, 32], "epochs": 1},
        "budgets": [2],
        "scenarios": [
            {"name": "real_only", "train": "real"},
            {"name": "synthetic_only", "train": "synthetic"},
        ],
    }
    for name, (path, value) in EXPERIMENTS.items():
        doc = copy.deepcopy(experiment)
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        (root / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return root


def _classless_dataset(root: Path) -> None:
    """A finalized canonical dataset whose classes list is empty: good images only."""
    from synth.annotations import Annotations
    from synth.writers import DatasetWriter

    with DatasetWriter(root, (), {"importer": "test"}) as writer:
        for split in ("train", "val"):
            empty = Annotations.from_instance_map(np.zeros((16, 16), np.uint16), {}, ())
            writer.write(split, "a", np.full((16, 16, 3), 90, np.uint8), empty)
        writer.finalize()


SCENES = {
    "bad_reference": {"appearance": {"reference": "no_such_reference"}},
    "unknown_key": {"colour": 1},
    "reversed_range": {"defects.0.size_mm": [8, 4]},
    "bad_family": {"surface.family": "wood"},
    "negative_count": {"splits.train.count": -1},
    "zero_resolution": {"camera.resolution": [0, 64]},
    "unknown_kind": {"defects.0.kind": "smudge"},
    "probability_2": {"impurities.0.probability": 2.0},
    "duplicate_names": {"defects.1.name": "scratch"},
}

EXPERIMENTS = {
    "exp_train_sideways": (("scenarios", 0, "train"), "sideways"),
    "exp_coreset_size_0": (("patchcore", "coreset_size"), 0),
    "exp_image_size_huge": (("patchcore", "image_size"), "huge"),
    "exp_unknown_patchcore": (("patchcore", "coresetsize"), 16),
    "exp_budget_0": (("budgets",), [0]),
    "exp_budget_negative": (("budgets",), [-5]),
    "exp_unknown_key": (("budget",), [2]),
    "exp_bad_override": (("synthetic", "overrides"), {"camera": {"resolution": [0, 0]}}),
    "exp_scene_missing": (("synthetic", "scene"), "no_such_scene.yaml"),
    "exp_yolo_unknown_arg": (("yolo",), {"train": {"epoch": 1}}),
    "exp_yolo_unknown_scenario": (("yolo",), {"scenarios": ["nope"]}),
    "exp_n_0": (("synthetic", "n"), 0),
    "exp_budget_twice": (("budgets",), [2, 2]),
    "exp_scenario_twice": (("scenarios",), [{"name": "a", "train": "real"}, {"name": "a", "train": "real"}]),
    "exp_seed_twice": (("maskrcnn",), {"seeds": [0, 0]}),
    "exp_segment_budget_twice": (("segment",), {"budgets": [2, "all", 2]}),
    "exp_plain": (("name",), "plain"),
    "exp_maskrcnn_synthetic": (("maskrcnn",), {"scenarios": ["synthetic_only"]}),
}

# (command line with {ws} for the workspace, exit status, text the message must contain)
CASES = {
    # scene configs
    "validate missing file": ("synth validate {ws}/nope.yaml", 1, "nope.yaml: cannot read scene config"),
    "validate not YAML": ("synth validate {ws}/text.yaml", 1, "text.yaml: not valid YAML"),
    "validate not UTF-8": ("synth validate {ws}/latin1.yaml", 1, "latin1.yaml: not UTF-8"),
    "validate a list": ("synth validate {ws}/list.yaml", 1, "expected a mapping"),
    "validate empty file": ("synth validate {ws}/empty.yaml", 1, "empty.yaml"),
    "validate unknown key": ("synth validate {ws}/unknown_key.yaml", 1, "colour"),
    "validate reversed range": ("synth validate {ws}/reversed_range.yaml", 1, "defects.0.size_mm"),
    "validate bad family": ("synth validate {ws}/bad_family.yaml", 1, "surface.family"),
    "validate negative count": ("synth validate {ws}/negative_count.yaml", 1, "splits.train.count"),
    "validate zero resolution": ("synth validate {ws}/zero_resolution.yaml", 1, "camera.resolution"),
    "validate unknown kind": ("synth validate {ws}/unknown_kind.yaml", 1, "defects.0.kind"),
    "validate probability 2": ("synth validate {ws}/probability_2.yaml", 1, "impurities.0.probability"),
    "validate duplicate names": ("synth validate {ws}/duplicate_names.yaml", 1, "scratch"),
    # render options
    "render --n 0": ("synth render {ws}/scene.yaml --out {ws}/r --renderer raster --n 0", 1, "--n"),
    "render --n -5": ("synth render {ws}/scene.yaml --out {ws}/r --renderer raster --n -5", 1, "--n"),
    "render --n huge": (
        "synth render {ws}/scene.yaml --out {ws}/r --renderer raster --n 1000000000",
        1,
        "--n",
    ),
    "render --shard 3/2": (
        "synth render {ws}/scene.yaml --out {ws}/r --renderer raster --shard 3/2",
        2,
        "--shard",
    ),
    "render --shard abc": (
        "synth render {ws}/scene.yaml --out {ws}/r --renderer raster --shard abc",
        2,
        "--shard",
    ),
    "render --workers 0": (
        "synth render {ws}/scene.yaml --out {ws}/r --renderer raster --workers 0",
        2,
        "--workers",
    ),
    "render --renderer foo": ("synth render {ws}/scene.yaml --out {ws}/r --renderer foo", 2, "--renderer"),
    "render --out a file": (
        "synth render {ws}/scene.yaml --out {ws}/scene.yaml --renderer raster",
        2,
        "--out",
    ),
    "render another scene into a dataset": (
        "synth render {ws}/probability_2.yaml --out {ws}/data --renderer raster",
        1,
        "probability_2.yaml",
    ),
    "render a changed --n into a dataset": (
        "synth render {ws}/scene.yaml --out {ws}/data --renderer raster --n 7",
        1,
        "--overwrite",
    ),
    # Perlin anomalies on a dataset's good train images
    "perlin --real not a dataset": (
        "synth perlin --real {ws}/empty --out {ws}/p --n 2 --seed 0",
        1,
        "empty: not a defectsynth dataset (no dataset.json)",
    ),
    "perlin --real without a good train image": (
        "synth perlin --real {ws}/defects --out {ws}/p --n 2 --seed 0",
        1,
        "defects has no good image",
    ),
    "perlin --n 0": ("synth perlin --real {ws}/data --out {ws}/p --n 0 --seed 0", 2, "--n"),
    "perlin --split not adding up to 1": (
        "synth perlin --real {ws}/data --out {ws}/p --n 2 --seed 0 --split 0.5 0.2",
        1,
        "split: the train and val fractions must be at least 0 and add up to 1",
    ),
    "perlin into its --real": (
        "synth perlin --real {ws}/data --out {ws}/data --n 2 --seed 0",
        1,
        "is also an input of this command",
    ),
    "render a bad appearance.reference": (
        "synth render {ws}/bad_reference.yaml --out {ws}/r --renderer raster",
        1,
        "appearance.reference: no_such_reference",
    ),
    "verify a plain folder": ("synth verify {ws}/images", 1, "dataset.json"),
    "verify a missing folder": ("synth verify {ws}/nope", 1, "nope: not a defectsynth dataset"),
    "preview --n 0": ("synth preview {ws}/scene.yaml --n 0 --renderer raster --out {ws}/p.png", 2, "--n"),
    # PatchCore training
    "pretrain --data missing": ("train pretrain patchcore --data {ws}/nope --out {ws}/c.st", 2, "--data"),
    "pretrain --data empty": (
        "train pretrain patchcore --data {ws}/empty --out {ws}/c.st",
        1,
        "no images found",
    ),
    "pretrain --out a directory": (
        "train pretrain patchcore --data {ws}/images --out {ws}/empty",
        2,
        "--out",
    ),
    "pretrain --coreset-size 1": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --coreset-size 1",
        2,
        "--coreset-size",
    ),
    "pretrain --imgsz 8": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --imgsz 8",
        2,
        "--imgsz",
    ),
    "pretrain --imgsz 20000": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --imgsz 20000",
        2,
        "'--imgsz' / '--image-size': 20000 is not in the range 16<=x<=4096",
    ),
    "segment --imgsz 20000": (
        "train pretrain segment --data {ws}/data --out {ws}/s.pt --imgsz 20000",
        2,
        "'--imgsz': 20000 is not in the range 32<=x<=4096",
    ),
    "yolo --imgsz 20000": (
        "train pretrain yolo --data {ws}/data --out {ws}/y --imgsz 20000",
        2,
        "'--imgsz': 20000 is not in the range 32<=x<=4096",
    ),
    "pretrain --epochs 0": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --epochs 0",
        2,
        "--epochs",
    ),
    "pretrain --holdout 1.5": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --holdout 1.5",
        2,
        "--holdout",
    ),
    "pretrain --augmentations -1": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --augmentations -1",
        2,
        "--augmentations",
    ),
    "pretrain --pool-stride 3": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --pool-stride 3",
        2,
        "--pool-stride",
    ),
    "pretrain --layers unknown": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --layers blocks.99",
        1,
        "blocks.99",
    ),
    "pretrain --backbone unknown": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --backbone no_such_net",
        1,
        "no_such_net",
    ),
    "pretrain --weights missing": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --weights {ws}/nope.pth",
        1,
        "nope.pth",
    ),
    "pretrain --device cuda": (
        "train pretrain patchcore --data {ws}/images --out {ws}/c.st --device cuda",
        2,
        "Invalid value for '--device': 'cuda': not available",
    ),
    "pretrain --pattern on a dataset": (
        "train pretrain patchcore --data {ws}/data --pattern *.png --out {ws}/c.st",
        1,
        "--pattern",
    ),
    "finetune --coreset junk": (
        "train finetune patchcore --coreset {ws}/junk.safetensors --data {ws}/images --out {ws}/c.st",
        1,
        "junk.safetensors",
    ),
    "finetune --coreset missing": (
        "train finetune patchcore --coreset {ws}/nope.st --data {ws}/images --out {ws}/c.st",
        2,
        "--coreset",
    ),
    "finetune --coreset-size 0": (
        "train finetune patchcore --coreset {ws}/coreset.safetensors --data {ws}/images --out {ws}/c.st "
        "--coreset-size 0",
        2,
        "--coreset-size",
    ),
    "finetune --device gpu": (
        "train finetune patchcore --coreset {ws}/coreset.safetensors --data {ws}/images --out {ws}/c.st "
        "--device gpu",
        2,
        "Invalid value for '--device': 'gpu': not available",
    ),
    "meld one coreset": (
        "train meld patchcore --coreset {ws}/coreset.safetensors --out {ws}/m.st",
        2,
        "--coreset",
    ),
    "meld --coreset-size -3": (
        "train meld patchcore --coreset {ws}/coreset.safetensors --coreset {ws}/coreset.safetensors "
        "--coreset-size -3 --out {ws}/m.st",
        2,
        "--coreset-size",
    ),
    "meld a junk coreset": (
        "train meld patchcore --coreset {ws}/coreset.safetensors --coreset {ws}/junk.safetensors "
        "--out {ws}/m.st",
        1,
        "junk.safetensors",
    ),
    # YOLO training
    "yolo --data missing": ("train pretrain yolo --data {ws}/nope --out {ws}/y", 2, "--data"),
    "yolo --epochs 0": ("train pretrain yolo --data {ws}/data --out {ws}/y --epochs 0", 2, "--epochs"),
    "yolo --set without =": (
        "train pretrain yolo --data {ws}/data --out {ws}/y --set mosaic",
        2,
        "--set 'mosaic'",
    ),
    "yolo --set unknown key": (
        "train pretrain yolo --data {ws}/data --out {ws}/y --set mosiac=0",
        2,
        "mosiac",
    ),
    "yolo --device cuda": (
        "train pretrain yolo --data {ws}/data --out {ws}/y --device cuda",
        2,
        "Invalid value for '--device': 'cuda': not available",
    ),
    "yolo --config not YAML": (
        "train pretrain yolo --data {ws}/data --out {ws}/y --config {ws}/text.yaml",
        2,
        "text.yaml",
    ),
    "yolo --out an existing file": ("train pretrain yolo --data {ws}/data --out {ws}/scene.yaml", 2, "--out"),
    "yolo on a dataset without classes": (
        "train pretrain yolo --data {ws}/noclass --out {ws}/y",
        1,
        "noclass/dataset.yaml: 'names' lists no classes",
    ),
    "yolo finetune junk weights": (
        "train finetune yolo --weights {ws}/junk.pt --data {ws}/data --out {ws}/y",
        1,
        "junk.pt",
    ),
    # evaluation
    "anomaly --coreset junk": (
        "evaluate anomaly --coreset {ws}/junk.safetensors --data {ws}/data --out {ws}/e",
        1,
        "junk",
    ),
    "anomaly --data not a dataset": (
        "evaluate anomaly --coreset {ws}/coreset.safetensors --data {ws}/images --out {ws}/e",
        1,
        "dataset.json",
    ),
    "anomaly --device cuda": (
        "evaluate anomaly --coreset {ws}/coreset.safetensors --data {ws}/data --out {ws}/e --device cuda",
        2,
        "Invalid value for '--device': 'cuda': not available",
    ),
    "anomaly --k 200": (
        "evaluate anomaly --coreset {ws}/coreset.safetensors --data {ws}/data --k 200",
        2,
        "--k",
    ),
    "detector --weights junk": (
        "evaluate detector --weights {ws}/junk.pt --data {ws}/data --out {ws}/e",
        1,
        "junk.pt",
    ),
    "detector --data not a dataset": (
        "evaluate detector --weights {ws}/junk.pt --data {ws}/images --out {ws}/e",
        1,
        "dataset.json",
    ),
    "predict --weights junk": (
        "evaluate predict --weights {ws}/junk.pt --source {ws}/images --mm-per-pixel 0.1 --out {ws}/e",
        1,
        "junk.pt",
    ),
    "predict --source no images": (
        "evaluate predict --weights {ws}/junk.pt --source {ws}/empty --mm-per-pixel 0.1 --out {ws}/e",
        1,
        "no images",
    ),
    "predict --mm-per-pixel 0": (
        "evaluate predict --weights {ws}/junk.pt --source {ws}/images --mm-per-pixel 0",
        2,
        "--mm-per-pixel",
    ),
    "predict --mm-per-pixel nan": (
        "evaluate predict --weights {ws}/junk.pt --source {ws}/images --mm-per-pixel nan",
        2,
        "Invalid value for '--mm-per-pixel': 'nan' is not a finite number.",
    ),
    "hybrid --threshold nan": (
        "evaluate hybrid --coreset {ws}/coreset.safetensors --classifier {ws}/junk.pt --data {ws}/data "
        "--threshold nan",
        2,
        "Invalid value for '--threshold': 'nan' is not a finite number.",
    ),
    "detector --conf inf": (
        "evaluate detector --weights {ws}/junk.pt --data {ws}/data --conf inf",
        2,
        "Invalid value for '--conf': 'inf' is not a finite number.",
    ),
    "classifier --region-threshold nan": (
        "train pretrain classifier --data {ws}/data --out {ws}/c.pt --coreset {ws}/coreset.safetensors "
        "--region-threshold nan",
        2,
        "Invalid value for '--region-threshold': 'nan' is not a finite number.",
    ),
    "render --ray-cpus-per-actor nan": (
        "synth render {ws}/scene.yaml --out {ws}/r --renderer raster --ray-cpus-per-actor nan",
        2,
        "'--ray-cpus-per-actor': 'nan' is not a finite number.",
    ),
    "calibrate --params with an empty item": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/cal.yaml --params surface.roughness,,",
        1,
        "--params 'surface.roughness,,': an empty item (a comma too many)",
    ),
    "calibrate --params twice": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/cal.yaml "
        "--params surface.roughness,surface.roughness=0.1:0.2",
        1,
        "--params: surface.roughness given more than once",
    ),
    # calibration
    "calibrate --out its own scene": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/scene.yaml --report {ws}/rep",
        1,
        "scene.yaml: is also an input",
    ),
    "calibrate --params in a section the scene lacks": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/fit.yaml --report {ws}/rep "
        "--params appearance.beta",
        1,
        "--params appearance.beta",
    ),
    "calibrate --params a whole-number range": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/fit.yaml --report {ws}/rep "
        "--params sensor.jpeg_quality",
        1,
        "'sensor.jpeg_quality' is not a range calibration fits",
    ),
    # experiments
    "domain-gap missing file": ("evaluate domain-gap {ws}/nope.yaml --out {ws}/x", 2, "nope.yaml"),
    "domain-gap not YAML": ("evaluate domain-gap {ws}/text.yaml --out {ws}/x", 1, "text.yaml"),
    "domain-gap not UTF-8": ("evaluate domain-gap {ws}/latin1.yaml --out {ws}/x", 1, "latin1.yaml"),
    **{
        f"domain-gap {name}": (f"evaluate domain-gap {{ws}}/{name}.yaml --out {{ws}}/x", 1, message)
        for name, message in {
            "exp_train_sideways": "scenarios.0.train",
            "exp_coreset_size_0": "coreset_size: Input should be greater than or equal to 2 (got 0)",
            "exp_image_size_huge": "image_size",
            "exp_unknown_patchcore": "coresetsize",
            "exp_budget_0": "budgets.0",
            "exp_budget_negative": "budgets.0",
            "exp_unknown_key": "budget",
            "exp_bad_override": "synthetic.overrides",
            "exp_scene_missing": "no_such_scene.yaml",
            "exp_yolo_unknown_arg": "yolo.train",
            "exp_yolo_unknown_scenario": "yolo.scenarios",
            "exp_n_0": "synthetic.n",
            "exp_budget_twice": "budgets: 2 given more than once; each may appear once",
            "exp_scenario_twice": "scenarios: name a given more than once; each may appear once",
            "exp_seed_twice": "maskrcnn.seeds: 0 given more than once; each may appear once",
            "exp_segment_budget_twice": "segment.budgets: 2 given more than once; each may appear once",
        }.items()
    },
    "domain-gap --kind without its section": (
        "evaluate domain-gap {ws}/exp_plain.yaml --out {ws}/results --kind yolo",
        1,
        "exp_plain.yaml: --kind yolo: the experiment has no `yolo:` section",
    ),
    "domain-gap options that select no cell": (
        "evaluate domain-gap {ws}/exp_maskrcnn_synthetic.yaml --out {ws}/results --kind maskrcnn "
        "--scenario real_only",
        1,
        "exp_maskrcnn_synthetic.yaml: --kind, --scenario, --budget and --seed together select no cell of it",
    ),
}


# Every command that writes, its output as OUT; True where the output is a file.
WRITERS = {
    "render": ("synth render {ws}/scene.yaml --renderer raster --out OUT", False),
    "preview": ("synth preview {ws}/scene.yaml --renderer raster --out OUT", True),
    "calibrate --out": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --report {ws}/rep --out OUT",
        True,
    ),
    "calibrate --report": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --out {ws}/fit.yaml --report OUT",
        False,
    ),
    "pretrain patchcore": ("train pretrain patchcore --data {ws}/images --out OUT", True),
    "finetune patchcore": (
        "train finetune patchcore --coreset {ws}/coreset.safetensors --data {ws}/images --out OUT",
        True,
    ),
    "meld patchcore": (
        "train meld patchcore --coreset {ws}/coreset.safetensors --coreset {ws}/coreset.safetensors "
        "--out OUT",
        True,
    ),
    "pretrain segment": ("train pretrain segment --data {ws}/data --out OUT", True),
    "pretrain maskrcnn": ("train pretrain maskrcnn --data {ws}/data --out OUT", True),
    "pretrain classifier": ("train pretrain classifier --data {ws}/data --out OUT", True),
    "pretrain yolo": ("train pretrain yolo --data {ws}/data --out OUT", False),
    "perlin": ("synth perlin --real {ws}/data --n 1 --seed 0 --out OUT", False),
    "import": ("evaluate import folders {ws}/images --out OUT", False),
    "anomaly": ("evaluate anomaly --coreset {ws}/coreset.safetensors --data {ws}/data --out OUT", False),
    "detector": ("evaluate detector --weights {ws}/junk.pt --data {ws}/data --out OUT", False),
    "segment": ("evaluate segment --weights {ws}/junk.pt --data {ws}/data --out OUT", False),
    "hybrid": (
        "evaluate hybrid --coreset {ws}/coreset.safetensors --classifier {ws}/junk.pt --data {ws}/data "
        "--out OUT",
        False,
    ),
    "gap": ("evaluate gap --synthetic {ws}/data --real {ws}/images --out OUT", False),
    "predict": (
        "evaluate predict --weights {ws}/junk.pt --source {ws}/images --mm-per-pixel 0.1 --out OUT",
        False,
    ),
    "domain-gap": ("evaluate domain-gap {ws}/exp_n_0.yaml --out OUT", False),
}
# Where none of them may write: under a file, or inside a dataset's images/ (a training image).
CASES.update(
    {
        f"{name}: output under a file": (
            line.replace("OUT", "{ws}/scene.yaml/out"),
            2,
            "scene.yaml is a file, not a folder",
        )
        for name, (line, _) in WRITERS.items()
    }
    | {
        f"{name}: output inside a dataset's images": (
            line.replace("OUT", "{ws}/data/images/train" + ("/000000.png" if file else "")),
            2,
            "is inside images/ of the dataset",
        )
        for name, (line, file) in WRITERS.items()
    }
)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(ws: Path, case: str):
    line, status, message = CASES[case]
    cli, *args = line.format(ws=ws).split()
    before = _snapshot(ws)
    result = CliRunner().invoke(CLIS[cli], args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case}: traceback {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    assert result.exit_code == status, f"{case}: exit {result.exit_code}\n{result.output}"
    assert message in result.output, f"{case}: {message!r} not in\n{result.output}"
    after = _snapshot(ws)
    assert {k: after.get(k) for k in before} == before, f"{case}: an existing file changed"
    new = [k for k in after if k not in before]
    assert all("ultralytics-config" in k or f"{k}/ultralytics-config" in after for k in new), (
        f"{case}: a failed run wrote {new}"
    )


@pytest.mark.parametrize("command", list(WRITERS))
def test_a_read_only_output_is_refused_before_any_work(ws: Path, read_only_dir: Path, command: str):
    line, file = WRITERS[command]
    out = read_only_dir / ("out.file" if file else "out")
    cli, *args = line.format(ws=ws).replace("OUT", str(out)).split()
    result = CliRunner().invoke(CLIS[cli], args)
    assert result.exit_code == 2, f"{command}: exit {result.exit_code}\n{result.output}"
    option = "--report" if command == "calibrate --report" else "--out"
    expected = f"Invalid value for '{option}': {out}: cannot be written: {read_only_dir} is not writable"
    assert expected in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not any(read_only_dir.iterdir())


# Every command that writes its results, run on a disk that is full: the output as OUT.
FULL_DISK = {
    "render": "synth render {ws}/scene.yaml --renderer raster --quiet --out OUT",
    "perlin": "synth perlin --real {ws}/data --n 1 --seed 0 --quiet --out OUT",
    "import": "evaluate import folders {ws}/source --out OUT",
    "pretrain patchcore": (
        "train pretrain patchcore --data {ws}/images --imgsz 32 --coreset-size 16 --epochs 1 --out OUT/c.st"
    ),
    "pretrain segment": (
        "train pretrain segment --data {ws}/defects --imgsz 32 --epochs 1 --crops-per-epoch 2 --batch 2 "
        "--out OUT/s.pt"
    ),
    "pretrain maskrcnn": (
        "train pretrain maskrcnn --data {ws}/defects --tile 64 --epochs 1 --trainable-stages 0 --out OUT/m.pt"
    ),
    "pretrain classifier": (
        "train pretrain classifier --data {ws}/defects --imgsz 32 --epochs 1 --crops-per-epoch 4 --batch 4 "
        "--out OUT/k.pt"
    ),
    "calibrate": (
        "synth calibrate {ws}/scene.yaml --real {ws}/images --trials 1 --images 2 --resolution 32 --quiet "
        "--report OUT --out OUT/fit.yaml"
    ),
}


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the atomic writer starts runs out of space at its first byte."""
    from synth import writers

    class Full:
        def __init__(self, path: Path, mode: str) -> None:
            self.file = open(path, mode)  # noqa: SIM115 (closed by __exit__)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers, "open", Full, raising=False)


@pytest.mark.parametrize("command", list(FULL_DISK))
def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space(ws, tmp_path, full_disk, command: str):
    out = tmp_path / "out"
    cli, *args = FULL_DISK[command].format(ws=ws).replace("OUT", str(out)).split()
    before = _snapshot(ws)
    result = CliRunner().invoke(CLIS[cli], args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, f"{command}: exit {result.exit_code}\n{result.output}"
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {out}/") and ": no space left on the disk (" in last, result.output
    assert " free there); nothing was half-written" in last and "Traceback" not in result.output
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert _snapshot(ws) == before
