"""A domain-gap cell's weights are a function of its cache key: the same cell trained in two
processes, one of which drew random numbers and built a model first (as a process that rendered
and pretrained before does), gives identical tensors. One tiny cell of each trained kind, on
tiles with a share of good tiles, as the experiments train them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluate import experiments
from evaluate.experiments.data import ExperimentData
from tests.test_detector_experiment import tiny_model_experiment

ROOT = Path(__file__).resolve().parents[1]
TILING = {"tile": 32, "good_tile_share": 0.5}
SECTIONS = {
    "maskrcnn": {
        "seeds": [0],
        "scenarios": ["real_only"],
        "train": {**TILING, "epochs": 1, "batch_size": 4, "fpn_channels": 32},
    },
    "yolo": {
        "seeds": [0],
        "scenarios": ["real_only"],
        "train": {**TILING, "epochs": 1, "imgsz": 32, "batch": 4, "workers": 0, "plots": False, "val": False},
    },
    "segment": {
        "budgets": [2],
        "seeds": [0],
        "scenarios": ["real_only"],
        "train": {"image_size": 32, "epochs": 1, "crops_per_epoch": 8, "batch_size": 4, "val_tiles": 4},
    },
}


def unrelated_random_work() -> None:
    """What earlier work leaves in a process: every generator advanced, a model built."""
    random.random()
    np.random.rand(7)
    torch.rand(1000)
    torch.nn.Conv2d(3, 16, 3)


def train_cells(experiment: str, out: str, disturbed: bool) -> None:
    """Train the `real_only` cell of each kind and save their state dicts to out/states.pt."""
    from evaluate.experiments.maskrcnn_cells import MaskRCNNCells
    from evaluate.experiments.segment_cells import SegmentCells
    from evaluate.experiments.yolo_cells import YoloCells
    from train.maskrcnn.model import MaskRCNNModel

    if disturbed:
        unrelated_random_work()
    config = experiments.load_experiment(Path(experiment))
    data = ExperimentData(config, Path(out))
    data.import_real()
    scenario = config.scenarios[0]
    maskrcnn = MaskRCNNCells(data).weights(scenario, 2, 0, Path(out) / "maskrcnn-run")
    yolo = YoloCells(data).weights(scenario, 2, 0, Path(out) / "yolo-run")
    states = {
        "maskrcnn": MaskRCNNModel.load(maskrcnn).network.state_dict(),
        "yolo": torch.load(yolo, map_location="cpu", weights_only=False)["model"].float().state_dict(),
        "segment": SegmentCells(data).model(scenario, 2, 0).network.state_dict(),
    }
    torch.save(states, Path(out) / "states.pt")


@pytest.mark.timeout(240)
def test_a_cell_trained_twice_gives_the_same_weights_whatever_the_process_did_before(tmp_path):
    experiment = tiny_model_experiment(tmp_path, **SECTIONS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = []
    for name, disturbed in (("alone", False), ("after_other_work", True)):
        call = f"from tests.test_cell_determinism import train_cells; train_cells({str(experiment)!r}, "
        call += f"{str(tmp_path / name)!r}, {disturbed})"
        runs.append(
            subprocess.Popen(
                ["nice", sys.executable, "-c", call],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for run in runs:
        output, _ = run.communicate()
        assert run.returncode == 0, output[-3000:]
    alone, disturbed = (torch.load(tmp_path / name / "states.pt") for name in ("alone", "after_other_work"))
    for kind in SECTIONS:
        assert alone[kind].keys() == disturbed[kind].keys()
        differ = [k for k in alone[kind] if not torch.equal(alone[kind][k], disturbed[kind][k])]
        assert not differ, f"{kind}: {len(differ)} tensors differ, e.g. {differ[:3]}"
