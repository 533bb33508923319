"""YOLO training on a tiny drawn dataset: real one-epoch runs, offline, on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from synth.config import parse_config
from synth.errors import ModelError
from synth.render import render_dataset
from train.backbones import mobilenet_v2_file
from train.cli import main as train_cli
from train.yolo.toydata import TOY_NAMES, make_toy_dataset
from train.yolo.training import (
    DEFECT_DEFAULTS,
    YoloSetupError,
    finetune,
    load_dataset,
    mix_real,
    pretrain,
    train_args,
)

REPO = Path(__file__).resolve().parents[1]
TINY = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "device": "cpu"}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("synth"), {"train": 8, "val": 4}, seed=1)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("real"), {"train": 3, "val": 2}, seed=2)


@pytest.fixture(scope="module")
def segment_run(synth: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("runs") / "segment"
    return pretrain(synth, run_dir, train_args(**TINY), task="segment", model="yolov8n-seg.yaml")


def test_segment_pretrain_from_yaml_writes_weights_and_record(segment_run) -> None:
    from ultralytics import YOLO

    model = YOLO(segment_run.weights)
    assert model.task == "segment"
    assert model.names == TOY_NAMES
    record = json.loads((segment_run.run_dir / "run.json").read_text())
    assert record["mode"] == "pretrain" and record["model"] == "yolov8n-seg.yaml"
    assert record["args"]["optimizer"] == "AdamW" and record["args"]["mosaic"] == 0.25
    assert "metrics/mAP50(M)" in record["metrics"]
    assert len((segment_run.run_dir / "train.txt").read_text().split()) == 8


def test_finetune_starts_from_the_pretrained_weights(segment_run, real: Path, tmp_path) -> None:
    import torch

    result = finetune(segment_run.weights, real, tmp_path / "finetune", train_args(**TINY))
    checkpoint = torch.load(result.weights, map_location="cpu", weights_only=False)
    assert checkpoint["train_args"]["model"] == str(segment_run.weights)
    assert result.record["mode"] == "finetune" and result.record["task"] == "segment"
    assert len((result.run_dir / "train.txt").read_text().split()) == 3


def test_meld_cli_mixes_the_requested_real_share(synth: Path, real: Path, tmp_path) -> None:
    out = tmp_path / "meld"
    options = [f"--{k}={v}" for k, v in TINY.items() if k != "plots"] + ["--set", "plots=false"]
    cli_args = ["--data", str(synth), "--data", str(real), "--real-fraction", "0.5", "--task"]
    result = CliRunner().invoke(
        train_cli, ["meld", "yolo", *cli_args, "detect", "--out", str(out), *options], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    train_list = [Path(p) for p in (out / "train.txt").read_text().split()]
    real_root = load_dataset(real).root
    n_real = sum(real_root in p.parents for p in train_list)
    assert (len(train_list), n_real) == (16, 8)
    assert record["mix"]["achieved_real_fraction"] == n_real / len(train_list) == 0.5
    assert record["mix"]["real_images_unique"] == 3
    assert record["task"] == "detect" and (out / "weights" / "best.pt").is_file()


GUARD = """
import json, socket, sys, urllib.request
from pathlib import Path
attempts = []
def refuse(name):
    def blocked(*args, **kwargs):
        attempts.append(name)
        raise OSError("network disabled by the test: " + name)
    return blocked
socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
try:
    urllib.request.urlopen("http://example.com", timeout=1)
except OSError:
    pass
guard_works = bool(attempts)  # the patched calls are the ones urllib makes
attempts.clear()
from train.yolo.training import finetune, pretrain, train_args
from evaluate.predict import predict_images
data, run = Path(sys.argv[1]), Path(sys.argv[2])
args = train_args(**json.loads(sys.argv[3]))
result = pretrain(data, run / "pretrain", args, task="detect")  # the ImageNet MobileNetV2 model
# a trainer rebuilds the model from its YAML, so fine-tuning loads the ImageNet weights again
result = finetune(result.weights, data, run / "finetune", args)
predict_images(result.weights, data / "images" / "val", run / "predict", 0.1, tile=48, device="cpu")
print("RESULT", json.dumps({"guard_works": guard_works, "attempts": attempts,
                            "weights": str(result.weights)}))
"""


def test_imagenet_detect_training_finetuning_and_prediction_attempt_no_network(synth: Path, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_"))}
    run = subprocess.run(
        [sys.executable, "-c", GUARD, str(synth), str(tmp_path / "detect"), json.dumps(TINY)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(s for s in run.stdout.splitlines() if s.startswith("RESULT "))
    report = json.loads(line.removeprefix("RESULT "))
    assert report["guard_works"]
    assert report["attempts"] == []
    assert Path(report["weights"]).is_file()
    assert len(list((tmp_path / "detect" / "predict").glob("*.json"))) == 4
    config_dir = tmp_path / "detect" / "pretrain" / "ultralytics-config" / "Ultralytics"
    assert (config_dir / "Arial.ttf").is_file() and (config_dir / "Arial.Unicode.ttf").is_file()
    for run in ("pretrain", "finetune"):  # the ImageNet weights came from the run's own torch home
        home = tmp_path / "detect" / run / "ultralytics-config" / "torch"
        link = home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
        assert link.resolve() == mobilenet_v2_file().resolve()


@given(
    n_synth=st.integers(1, 60),
    n_real=st.integers(1, 12),
    fraction=st.floats(0.0, 0.95),
    seed=st.integers(0, 3),
)
def test_mix_share_is_as_close_as_counts_allow(n_synth, n_real, fraction, seed) -> None:
    synthetic = [Path(f"/s/{i}.png") for i in range(n_synth)]
    real = [Path(f"/r/{i}.png") for i in range(n_real)]
    mixed, mix = mix_real(synthetic, real, fraction, seed)
    drawn = [p for p in mixed if p.parent == Path("/r")]
    assert Counter(p for p in mixed if p.parent == Path("/s")) == Counter(synthetic)
    assert mix["achieved_real_fraction"] == len(drawn) / len(mixed)
    # the real count is the rounded ideal count, so the share is within half an image of the request
    ideal = fraction / (1 - fraction) * n_synth
    assert abs(len(drawn) - ideal) <= 0.5
    counts = Counter(drawn).values()
    assert not drawn or max(counts) - min(counts) <= 1 and len(counts) == min(n_real, len(drawn))
    assert mix_real(synthetic, real, fraction, seed)[0] == mixed


def test_mix_extremes_and_bad_fraction() -> None:
    synthetic, real = [Path("/s/a.png")], [Path("/r/a.png"), Path("/r/b.png")]
    assert sorted(mix_real(synthetic, real, 1.0, 0)[0]) == real
    assert mix_real(synthetic, real, 0.0, 0)[0] == synthetic
    with pytest.raises(YoloSetupError, match=r"--real-fraction 1.5"):
        mix_real(synthetic, real, 1.5, 0)
    with pytest.raises(YoloSetupError, match="real dataset has no training images"):
        mix_real(synthetic, [], 0.5, 0)


def test_meld_refuses_different_class_names(synth: Path, tmp_path) -> None:
    other = make_toy_dataset(tmp_path / "other", {"train": 1, "val": 1})
    data = yaml.safe_load((other / "dataset.yaml").read_text())
    (other / "dataset.yaml").write_text(yaml.safe_dump(data | {"names": {0: "dent", 1: "stain"}}))
    from train.yolo.training import meld

    with pytest.raises(ModelError) as error:
        meld(synth, other, tmp_path / "run", train_args(**TINY))
    message = str(error.value)
    assert str(synth / "dataset.yaml") in message and str(other / "dataset.yaml") in message
    assert "['scratch', 'stain']" in message and "['dent', 'stain']" in message


def test_evaluate_detector_refuses_yolo_weights_of_other_classes(segment_run, tiny_scene, tmp_path) -> None:
    from evaluate.cli import main as evaluate_cli

    data = tmp_path / "data"
    render_dataset(parse_config(tiny_scene), data, renderer="raster", progress=False)
    args = [
        "detector",
        "--weights",
        str(segment_run.weights),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "e"),
    ]
    result = CliRunner().invoke(evaluate_cli, [*args, "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        f"class names: {segment_run.weights} has {list(TOY_NAMES.values())}, {data} has "
        "['scratch', 'pit', 'water_stain']; both must be the same, in order"
    ) in result.output
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_missing_weights_fail_without_download(synth: Path, tmp_path) -> None:
    with pytest.raises(YoloSetupError, match="never downloaded"):
        pretrain(synth, tmp_path / "run", train_args(**TINY), model="yolov8n-seg.pt")


def test_model_task_mismatch_is_reported(synth: Path, tmp_path) -> None:
    with pytest.raises(YoloSetupError, match="yolo11n-seg.yaml is a segment model but the task"):
        pretrain(synth, tmp_path / "run", train_args(**TINY), task="detect", model="yolo11n-seg.yaml")


def test_train_args_layers_and_errors(tmp_path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("mosaic: 0.0\nepochs: 5\nlr0: 0.01\n")
    args = train_args(config, ["lr0=0.002", "cos_lr=false"], epochs=7, imgsz=None)
    assert args["mosaic"] == 0.0 and args["epochs"] == 7 and args["lr0"] == 0.002
    assert args["cos_lr"] is False and args["flipud"] == DEFECT_DEFAULTS["flipud"] == 0.0
    config.write_text("mosiac: 0.0\n")
    with pytest.raises(YoloSetupError, match=rf"{config}: unknown ultralytics train argument\(s\) mosiac"):
        train_args(config)
    with pytest.raises(YoloSetupError, match="--set: data cannot be overridden"):
        train_args(sets=["data=x.yaml"])
    with pytest.raises(YoloSetupError, match="expected KEY=VALUE"):
        train_args(sets=["mosaic"])
    with pytest.raises(YoloSetupError, match="amp=True: fp16 AMP .* downloads yolo26n.pt"):
        train_args(sets=["amp=true"])
    assert train_args(device="cpu")["amp"] is False


def test_dataset_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(YoloSetupError, match="no dataset.yaml"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.yaml").write_text("path: .\ntrain: images/train\nval: val.txt\nnames: {0: a}\n")
    dataset = load_dataset(tmp_path)
    assert dataset.root == tmp_path.resolve() and dataset.images("train") == []
    with pytest.raises(YoloSetupError, match=rf"dataset.yaml: field 'val': no file {tmp_path}/val.txt"):
        dataset.images("val")
    with pytest.raises(YoloSetupError, match=r"dataset.yaml: no images in split 'train'"):
        pretrain(tmp_path, tmp_path / "run", train_args(**TINY))


def test_a_copied_and_renamed_dataset_trains_on_its_own_files(tiny_scene: dict, tmp_path) -> None:
    """Older datasets record their absolute root in dataset.yaml; a copy of one, moved and with
    images deleted, still trains on the copy's images, and a copy without OBB labels is refused
    rather than trained on the original's."""
    tiny_scene["splits"]["train"] = {"count": 4, "good_fraction": 0.25}
    original = tmp_path / "original"
    render_dataset(parse_config(tiny_scene), original, renderer="raster", progress=False)
    data = yaml.safe_load((original / "dataset.yaml").read_text())
    (original / "dataset.yaml").write_text(yaml.safe_dump({"path": str(original.resolve()), **data}))
    moved = shutil.copytree(original, tmp_path / "copy").rename(tmp_path / "moved")
    for image in sorted((moved / "images" / "train").glob("*.png"))[:2]:
        image.unlink()
    shutil.rmtree(moved / "labels_obb")
    options = [f"--{k}={v}" for k, v in TINY.items() if k != "plots"] + ["--set", "plots=false"]
    out = tmp_path / "run"
    command = ["pretrain", "yolo", "--data", str(moved), "--out", str(out), *options]
    result = CliRunner().invoke(train_cli, [*command, "--task", "detect"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = sorted(Path(p) for p in (out / "train.txt").read_text().split())
    assert listed == sorted(p.resolve() for p in (moved / "images" / "train").glob("*.png"))
    assert len(listed) == 2
    assert json.loads((out / "run.json").read_text())["data"] == [str((moved / "dataset.yaml").resolve())]
    result = CliRunner().invoke(train_cli, [*command, "--task", "obb"])
    assert result.exit_code == 1 and f"{moved.resolve()}/labels_obb/train: no OBB labels" in result.output


def test_ultralytics_leaves_the_process_thread_count_alone(tmp_path) -> None:
    """select_device() would set torch's threads process-wide to ultralytics' cpu_count - 1, so an
    experiment's PatchCore cells after its YOLO cells computed with other threads than without."""
    import torch

    from train.yolo.offline import import_ultralytics

    import_ultralytics(tmp_path)
    from ultralytics.utils import NUM_THREADS
    from ultralytics.utils.torch_utils import select_device

    before = torch.get_num_threads()
    wanted = 1 if NUM_THREADS != 1 else 2  # a count ultralytics would change
    torch.set_num_threads(wanted)
    try:
        import_ultralytics(tmp_path)
        select_device("cpu", verbose=False)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
