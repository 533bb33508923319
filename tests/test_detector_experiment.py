"""Detector cells of `evaluate domain-gap` (issue 18): the YOLO default model, mask AP for
models with masks, Mask R-CNN cells (trained, cached, tabled), seeds, and the checks at load."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from evaluate import experiments
from evaluate.experiments import ExperimentError
from evaluate.experiments.config import YoloSettings, restrict
from evaluate.experiments.data import ExperimentData, key
from evaluate.experiments.yolo_cells import YoloCells
from synth.dataset import Dataset
from tests.test_experiments import ROOT, _fake_real

YOLO_TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "val": False}
MASKRCNN_TRAIN = {"tile": 64, "epochs": 1, "batch_size": 4, "fpn_channels": 32}


def tiny_model_experiment(tmp_path: Path, **sections) -> Path:
    """The fake magnetic tiles, 64² raster renders with defects in every train image, PatchCore off;
    `sections` adds the model sections (yolo, maskrcnn, segment)."""
    _fake_real(tmp_path / "real")
    doc = {
        "name": "tiny_detectors",
        "real": {"format": "folders", "src": "real", "split": [0.5, 0.25, 0.25], "group_pattern": r"exp\d+"},
        "synthetic": {
            "scene": str(ROOT / "scenes" / "metal_tile.yaml"),
            "n": 8,
            "renderer": "raster",
            "overrides": {"camera": {"resolution": [64, 64]}, "splits": {"train": {"good_fraction": 0.0}}},
        },
        "budgets": [2],
        "patchcore_cells": False,
        "scenarios": [
            {"name": "real_only", "train": "real"},
            {"name": "synthetic_only", "train": "synthetic"},
            {"name": "synthetic_finetuned", "train": "finetune"},
            {"name": "mixed", "train": "meld"},
        ],
        **sections,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_yolo_defaults_to_the_imagenet_model_and_old_files_keep_their_keys():
    assert YoloSettings().model == "mobilenetv2-yolo-detect.yaml"
    # the shipped file that trained from scratch says so, so its cells mean what they meant
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile.yaml")
    assert config.yolo is not None and config.yolo.model == "yolo11n.yaml"
    # without `seeds`, a cell's settings are those the cells were keyed by before seeds existed
    old_fields = {"model", "train", "finetune", "real_fraction", "conf", "overrides"}
    assert set(config.yolo.recipe(None)) == old_fields
    assert config.yolo.recipe(None) == config.yolo.model_dump(exclude={"scenarios", "seeds"})


def test_seeds_give_distinct_cells_keyed_as_if_the_seed_were_written_in_train(tmp_path):
    path = tiny_model_experiment(
        tmp_path, yolo={"train": YOLO_TRAIN, "seeds": [0, 1, 2], "scenarios": ["real_only"]}
    )
    config = experiments.load_experiment(path)
    cells = config.detector_cells("yolo")
    assert [seed for _, _, seed in cells] == [0, 1, 2]
    data = ExperimentData(config, tmp_path / "out")
    data.import_real()
    yolo = YoloCells(data)
    keys = {key(yolo.cell_recipe(s, b, seed)) for s, b, seed in cells}
    assert len(keys) == 3
    assert yolo.args(1)["seed"] == 1 and yolo.args(1, {"epochs": 2})["epochs"] == 2

    written = yaml.safe_load(path.read_text())
    written["yolo"] = {"train": {**YOLO_TRAIN, "seed": 1}, "scenarios": ["real_only"]}
    path.write_text(yaml.safe_dump(written))
    one = experiments.load_experiment(path)
    (scenario, budget, seed), *_ = one.detector_cells("yolo")
    assert seed is None
    same = YoloCells(ExperimentData(one, tmp_path / "out"))
    assert key(same.cell_recipe(scenario, budget, None)) == key(yolo.cell_recipe(*cells[1]))


def test_yolo_cells_train_for_epochs_which_their_keys_hold_never_for_hours(tmp_path):
    keys = []
    for epochs in (1, 2):
        folder = tmp_path / f"epochs{epochs}"
        train = {**YOLO_TRAIN, "epochs": epochs}
        config = experiments.load_experiment(
            tiny_model_experiment(folder, yolo={"train": train, "scenarios": ["real_only"]})
        )
        data = ExperimentData(config, folder / "out")
        data.import_real()
        (cell,) = config.detector_cells("yolo")
        keys.append(key(YoloCells(data).cell_recipe(*cell)))
    assert keys[0] != keys[1]
    untimed = {k: v for k, v in YOLO_TRAIN.items() if k != "epochs"}
    hours = "a cell trains for a number of epochs, not hours (the epochs are part of its cache key)"
    for number, (section, message) in enumerate((
        ({"train": {**YOLO_TRAIN, "time": 0.19}}, f"yolo.train: time 0.19: {hours}; give epochs instead"),
        ({"train": YOLO_TRAIN, "finetune": {"time": 0.1}}, f"yolo.finetune: time 0.1: {hours}; give"),
        ({"train": untimed}, "yolo.train: no epochs: a cell trains for a number of epochs (part of its"),
    )):  # fmt: skip
        with pytest.raises(ExperimentError) as error:
            experiments.load_experiment(tiny_model_experiment(tmp_path / f"bad{number}", yolo=section))
        assert f"tiny.yaml: {message}" in str(error.value)


@pytest.mark.timeout(120)
def test_a_segment_model_is_scored_by_mask_ap_too(tmp_path):
    yolo = {"model": "yolo11n-seg.yaml", "train": YOLO_TRAIN, "scenarios": ["real_only"]}
    config = experiments.load_experiment(tiny_model_experiment(tmp_path, yolo=yolo))
    results = experiments.run(config, tmp_path / "out")
    (cell,) = results.yolo
    assert {"mask_map50", "mask_map50_95"} <= set(cell) and 0 <= cell["mask_map50"] <= 1
    table = json.loads((tmp_path / "out" / "yolo_table.json").read_text())
    assert "mask mAP50" in table["header"] and "seeds" not in table["header"]


@pytest.mark.timeout(180)
def test_maskrcnn_cells_run_per_seed_are_tabled_with_their_spread_and_cached(tmp_path, monkeypatch):
    maskrcnn = {
        "scenarios": ["real_only", "synthetic_finetuned"],
        "seeds": [0, 1],
        "train": MASKRCNN_TRAIN,
        "finetune": {"lr": 0.0001},
    }
    config = experiments.load_experiment(tiny_model_experiment(tmp_path, maskrcnn=maskrcnn))
    out = tmp_path / "out"
    results = experiments.run(config, out)
    assert results.yolo == [] and results.patchcore == []
    names = sorted(r["cell"] for r in results.maskrcnn)
    assert names == [
        "real_only__real2__seed0",
        "real_only__real2__seed1",
        "synthetic_finetuned__real2__seed0",
        "synthetic_finetuned__real2__seed1",
    ]
    for r in results.maskrcnn:
        assert r["model"] == "maskrcnn" and 0 <= r["map50"] <= 1 and 0 <= r["mask_map50"] <= 1
    assert len({r["weights"] for r in results.maskrcnn}) == 4
    assert len(list((out / "maskrcnn" / "weights").glob("synthetic-*.pt"))) == 2  # one pretraining a seed

    table = json.loads((out / "maskrcnn_table.json").read_text())
    assert table["header"][:5] == ["scenario", "real defect imgs", "seeds", "mAP50", "mAP50-95"]
    assert "mask mAP50" in table["header"] and table["header"][-1] == "false alarms on good"
    assert [row[:3] for row in table["rows"]] == [["real_only", 2, 2], ["synthetic_finetuned", 2, 2]]
    assert all(" (" in value and "–" in value for row in table["rows"] for value in row[3:])
    assert "Mask R-CNN (one class: defect)" in (out / "report.html").read_text()

    def untrained(*args, **kwargs):
        raise AssertionError("a cached cell was trained or predicted again")

    monkeypatch.setattr("train.maskrcnn.training.train_on", untrained)
    monkeypatch.setattr("evaluate.detector.predict_maskrcnn", untrained)
    again = experiments.run(config, out)
    assert [r["map50"] for r in again.maskrcnn] == [r["map50"] for r in results.maskrcnn]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"maskrcnn": {"train": {"tile": 8}}},
            r"maskrcnn.train: invalid Mask R-CNN settings: tile: .* equal to 32 \(got 8\)$",
        ),
        ({"maskrcnn": {"train": {"tiles": 64}}}, "maskrcnn.train: invalid Mask R-CNN settings: tiles: unk"),
        ({"maskrcnn": {"finetune": {"backbone": "efficientnet_lite0"}}}, "maskrcnn.finetune: "),
        ({"maskrcnn": {"scenarios": ["nope"]}}, r"maskrcnn.scenarios \['nope'\]"),
        ({"maskrcnn": {"seeds": []}}, "maskrcnn.seeds"),
        ({"yolo": {"seeds": [0, "x"]}}, "yolo.seeds.1"),
        ({"yolo": {"overrides": {"camera": {"resolution": [0, 0]}}}}, "yolo.overrides"),
    ],
)
def test_bad_detector_sections_fail_at_load_naming_the_field(tmp_path, section, message):
    with pytest.raises(ExperimentError, match=message):
        experiments.load_experiment(tiny_model_experiment(tmp_path, **section))


def test_yolo_real_data_is_imported_under_the_given_class_names(tmp_path):
    """`real.names` is `evaluate import yolo --names`; left out, the real data keeps its key."""
    rng = np.random.default_rng(0)
    for i in range(8):
        image = (120 + 10 * rng.standard_normal((48, 48))).clip(0, 255).astype(np.uint8)
        label = "0 0.3 0.3 0.6 0.3 0.6 0.6 0.3 0.6\n" if i % 2 else ""
        (tmp_path / "kol" / "images" / "train").mkdir(parents=True, exist_ok=True)
        (tmp_path / "kol" / "labels" / "train").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "kol" / "images" / "train" / f"{i}.png"), image)
        (tmp_path / "kol" / "labels" / "train" / f"{i}.txt").write_text(label)
    doc = {
        "name": "yolo_names",
        "real": {"format": "yolo", "src": "kol", "names": ["defect"], "split": [0.5, 0.25, 0.25]},
        "scenarios": [{"name": "real_only", "train": "real"}],
        "patchcore_cells": False,
    }
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(doc))
    data = ExperimentData(experiments.load_experiment(path), tmp_path / "out")
    data.import_real()
    assert [c.name for c in Dataset(data.real_root).classes] == ["defect"]
    assert data.real_recipe()["names"] == ["defect"]
    doc["real"].pop("names")
    path.write_text(yaml.safe_dump(doc))
    assert "names" not in experiments.load_experiment(path).real.recipe()


@pytest.mark.parametrize("name", ["kolektorsdd_detectors", "metal_tile_detectors"])
def test_shipped_detector_experiments_are_valid(name):
    config = experiments.load_experiment(ROOT / "experiments" / f"{name}.yaml")
    assert {s.train for s in config.scenarios} == {"real", "synthetic", "finetune", "meld"}
    # the magnetic file's sized_finetuned (6 cells) and sized_only (3) scenarios: Mask R-CNN only;
    # KolektorSDD's perlin_finetuned (6) and perlin_only (3): both detectors
    sized = 9 if name == "metal_tile_detectors" else 0
    perlin = 9 if name == "kolektorsdd_detectors" else 0
    for kind, extra in (("yolo", perlin), ("maskrcnn", sized + perlin)):
        cells = config.detector_cells(kind)
        assert len(cells) == 21 + extra and {seed for _, _, seed in cells} == {0, 1, 2}
    if sized:  # one set of overrides: sized_only scores sized_finetuned's pretrainings
        by_name = {s.name: s for s in config.scenarios}
        assert by_name["sized_only"].overrides == by_name["sized_finetuned"].overrides
    assert config.yolo is not None and config.yolo.model == "mobilenetv2-yolo-detect.yaml"


def test_gpu_recipe_file_is_valid_and_runs_one_seed_by_default():
    """benchmarks/yolo_gpu.sh swaps `device: cpu` for the GPU and passes --seed per seed."""
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile_yolo_gpu.yaml")
    assert config.yolo is not None and config.yolo.train["device"] == "cpu"
    script = (ROOT / "benchmarks" / "yolo_gpu.sh").read_text()
    assert "s/device: cpu}/device: $DEVICE}/" in script and "--seed" in script
    cells = restrict(config, seeds=[0]).detector_cells("yolo")
    assert [(s.name, b, seed) for s, b, seed in cells] == [
        ("real_only", 10, 0),
        ("real_only", "all", 0),
        ("synthetic_only", None, 0),
        ("synthetic_finetuned", 10, 0),
        ("synthetic_finetuned", "all", 0),
    ]


PERLIN_SCENARIOS = [
    {"name": "perlin_only", "train": "synthetic", "source": "perlin"},
    {"name": "perlin_finetuned", "train": "finetune", "source": "perlin"},
]
PERLIN = {"n": 6, "seed": 0, "good": 2, "min_area": 50}


def perlin_experiment(tmp_path: Path, **sections) -> Path:
    """The tiny detector experiment with the two Perlin scenarios and a `perlin:` section."""
    path = tiny_model_experiment(tmp_path, **sections)
    doc = yaml.safe_load(path.read_text())
    doc["scenarios"] += PERLIN_SCENARIOS
    doc["perlin"] = PERLIN
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.timeout(180)
def test_perlin_scenarios_train_on_the_2d_baseline_and_leave_render_cells_keyed_as_before(tmp_path):
    maskrcnn = {"scenarios": ["synthetic_finetuned", "perlin_finetuned"], "train": MASKRCNN_TRAIN}
    before = experiments.load_experiment(
        tiny_model_experiment(
            tmp_path / "before", maskrcnn={**maskrcnn, "scenarios": ["synthetic_finetuned"]}
        )
    )
    config = experiments.load_experiment(perlin_experiment(tmp_path, maskrcnn=maskrcnn))
    data = ExperimentData(config, tmp_path / "out")
    data.import_real()
    renders, perlin = (s for s in config.scenarios if s.name in ("synthetic_finetuned", "perlin_finetuned"))

    # adding Perlin scenarios and the section changes no key of the render cells
    old = ExperimentData(before, tmp_path / "out")
    (old_renders,) = (s for s in before.scenarios if s.name == "synthetic_finetuned")
    assert data.synthetic_recipe(renders) == old.synthetic_recipe(old_renders)

    root = data.synthetic_root(perlin)
    assert root.parent == tmp_path / "out" / "perlin" and root == data.synthetic_root(perlin)
    perlin_set = Dataset(root)
    assert [c.name for c in perlin_set.classes] == ["defect"]
    assert sum(perlin_set.splits.values()) == PERLIN["n"] + PERLIN["good"]
    assert data.synthetic_recipe(perlin) == {
        "perlin": {**PERLIN, "split": [0.8, 0.2]},
        "real": data.real_recipe(),
    }

    results = experiments.run(config, tmp_path / "out")
    names = sorted(r["cell"] for r in results.maskrcnn)
    assert names == ["perlin_finetuned__real2", "synthetic_finetuned__real2"]
    table = json.loads((tmp_path / "out" / "maskrcnn_table.json").read_text())
    assert [row[0] for row in table["rows"]] == ["synthetic_finetuned", "perlin_finetuned"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"scenarios": [{"name": "p", "train": "real", "source": "perlin"}]},
            "scenario p: source perlin needs synth",
        ),
        ({"perlin": None}, r"scenarios \['perlin_only', 'perlin_finetuned'\] need a `perlin:` section"),
        ({"perlin": {"n": 0, "seed": 0}}, "perlin: invalid perlin settings: n: "),
        (
            {"patchcore_cells": ["perlin_only"]},
            r"scenarios \['perlin_only'\]: PatchCore trains on good images",
        ),
        (
            {
                "scenarios": [
                    {"name": "p", "train": "synthetic", "source": "perlin", "overrides": {"seed": 1}}
                ]
            },
            "scenario p: overrides change the scene",
        ),
        ({"scenarios": [{"name": "p", "train": "synthetic", "source": "photo"}]}, "scenarios.0.source"),
    ],
)
def test_bad_perlin_scenarios_fail_at_load_naming_the_field(tmp_path, change, message):
    path = perlin_experiment(tmp_path)
    doc = {**yaml.safe_load(path.read_text()), **change}
    if doc["perlin"] is None:
        doc.pop("perlin")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ExperimentError, match=message):
        experiments.load_experiment(path)
