"""A dataset records what made it: a run with other parameters refuses, `--overwrite` replaces."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synth.annotations import ClassInfo
from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import Dataset, verify
from synth.errors import DataError
from synth.render import scaled_config
from synth.writers import DatasetWriter

CLASSES = (ClassInfo(1, "scratch"),)


def write_scene(scene: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(scene))
    return path


def render(scene: Path, out: Path, *options: str):
    return CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(out), "--renderer", "raster", "--quiet", *options]
    )


def ids(root: Path) -> dict[str, list[str]]:
    return {s: sorted(p.stem for p in (root / "images" / s).glob("*.png")) for s in ("train", "val", "test")}


def test_other_n_is_refused_naming_folder_and_parameters(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    before = ids(out)
    result = render(scene, out, "--n", "5")
    old, new = parse_config(tiny_scene).digest(), scaled_config(parse_config(tiny_scene), 5).digest()
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {out}: this dataset was made with other parameters (config_hash {old!r} -> {new!r}; "
        "config.splits.test.count 4 -> 2; config.splits.train.count 4 -> 2; "
        "config.splits.val.count 2 -> 1); pass --overwrite to replace it, or choose another --out\n"
    )
    assert ids(out) == before and verify(out) == []  # nothing was touched


def test_other_seed_and_other_scene_are_refused(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    reseeded = write_scene(tiny_scene | {"seed": 4}, tmp_path / "tiny.yaml")
    result = render(reseeded, out)
    assert result.exit_code == 1
    assert "(config_hash " in result.output and "; seed 3 -> 4; config.seed 3 -> 4)" in result.output
    # The same content under another path (or spelling) is the same dataset: it resumes.
    other = write_scene(tiny_scene | {"seed": 3}, tmp_path / "copy.yaml")
    before = ids(out)
    result = render(other, out)
    assert result.exit_code == 0, result.output
    assert ids(out) == before and verify(out) == []


def test_other_scene_with_other_classes_is_a_one_line_error(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    tiny_scene["defects"][0]["name"] = "gouge"
    result = render(write_scene(tiny_scene, tmp_path / "tiny.yaml"), out)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(
        f"Error: {out}: this dataset was made with other parameters "
        "(classes ['scratch', 'pit', 'water_stain'] -> ['gouge', 'pit', 'water_stain']; config_hash "
    )
    assert "; config.defects.0.name 'scratch' -> 'gouge');" in result.output


def test_overwrite_replaces_the_dataset_without_leftovers(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    (out / "notes.txt").write_text("mine")  # not the dataset's: stays
    result = render(scene, out, "--n", "5", "--overwrite")
    assert result.exit_code == 0, result.output
    assert ids(out) == {"train": ["000000", "000001"], "val": ["000002"], "test": ["000003", "000004"]}
    for kind in ("masks", "instances", "meta", "labels"):
        assert len(list((out / kind).rglob("*.*"))) == 5, kind
    assert Dataset(out).splits == {"train": 2, "val": 1, "test": 2}
    assert verify(out) == [] and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "dataset.json").read_text())["source"]["config"]["splits"]["train"]["count"] == 2


def test_overwrite_deletes_only_the_files_the_dataset_wrote(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    (out / "images" / "train" / "holiday.png").write_bytes(b"mine")  # in a dataset folder, not a sample
    result = render(scene, out, "--n", "5", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "images" / "train" / "holiday.png").read_bytes() == b"mine"
    assert ids(out)["train"] == ["000000", "000001", "holiday"]
    assert verify(out) == ["images/train/holiday.png: image without meta (unfinished sample)"]


def test_render_overwrite_of_an_import_leaves_no_import_report(tiny_scene: dict, tmp_path: Path) -> None:
    from PIL import Image

    from evaluate.cli import main as evaluate_cli

    src, out = tmp_path / "src", tmp_path / "d"
    (src / "good").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(src / "good" / "g.png")
    result = CliRunner().invoke(evaluate_cli, ["import", "folders", str(src), "--out", str(out)])
    assert result.exit_code == 0 and (out / "import_report.json").exists(), result.output
    result = render(write_scene(tiny_scene, tmp_path / "tiny.yaml"), out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "import_report.json").exists() and verify(out) == []


def test_workers_overwrite_too(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out).exit_code == 0
    result = render(scene, out, "--n", "4", "--workers", "2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sum(len(v) for v in ids(out).values()) == 4 and verify(out) == []


def test_same_parameters_resume(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path / "tiny.yaml"), tmp_path / "d"
    assert render(scene, out, "--n", "5").exit_code == 0
    (out / "meta" / "val" / "000002.json").unlink()  # as if interrupted
    result = CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(out), "--renderer", "raster", "--n", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "rendered 1, skipped 4 finished" in result.output and verify(out) == []


def test_overwrite_refuses_a_folder_that_is_no_dataset(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path / "tiny.yaml")
    foreign = tmp_path / "foreign"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "holiday.png").write_bytes(b"png")
    result = render(scene, foreign, "--overwrite")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {foreign}: has images but no dataset.json, so it is not a defectsynth dataset; "
        "it is left alone: choose another --out\n"
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text('{"format": "something-else"}')
    result = render(scene, other, "--overwrite")
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: {other / 'dataset.json'}: not a defectsynth-1 dataset; the folder is left alone\n"
    )
    assert (foreign / "images" / "holiday.png").exists() and (other / "dataset.json").exists()


def test_writer_source_check_is_generic_for_importers(tmp_path: Path) -> None:
    source = {"importer": "folder", "seed": 0, "fractions": [0.6, 0.2, 0.2], "group_pattern": None}
    DatasetWriter(tmp_path, CLASSES, source).close()
    with pytest.raises(DataError) as error:
        DatasetWriter(tmp_path, CLASSES, {**source, "seed": 1, "fractions": (0.8, 0.1, 0.1)})
    assert str(error.value) == (
        f"{tmp_path}: this dataset was made with other parameters (seed 0 -> 1; "
        "fractions [0.6, 0.2, 0.2] -> [0.8, 0.1, 0.1]); "
        "pass --overwrite to replace it, or choose another --out"
    )
    DatasetWriter(tmp_path, CLASSES, {**source, "versions": {"numpy": "9"}}).close()  # provenance only
    with DatasetWriter(tmp_path, CLASSES, {**source, "seed": 1}, overwrite=True) as writer:
        assert writer.source["seed"] == 1
    assert json.loads((tmp_path / "dataset.json").read_text())["source"]["seed"] == 1


def test_a_writer_dropped_without_close_releases_its_lock(tmp_path: Path) -> None:
    source = {"importer": "folder", "seed": 0}
    DatasetWriter(tmp_path, CLASSES, source)  # garbage at once, as in a function that returns
    kept = DatasetWriter(tmp_path, CLASSES, source)
    with pytest.raises(DataError) as error:
        DatasetWriter(tmp_path, CLASSES, source)
    assert str(error.value) == (
        f"{tmp_path} is being written by another run (pid {os.getpid()} on {socket.gethostname()}, "
        "shard 0/1); wait for it to finish or stop it"
    )
    kept.close()
    DatasetWriter(tmp_path, CLASSES, source, overwrite=True).close()
    assert not list((tmp_path / ".locks").glob("shard-*"))


def test_a_waiting_writer_starts_only_when_the_holder_closes(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Runs of one experiment share its renders: the second waits instead of refusing."""
    source = {"importer": "folder", "seed": 0}
    holder = DatasetWriter(tmp_path, CLASSES, source)
    events: list[str] = []

    def second_run() -> None:
        DatasetWriter(tmp_path, CLASSES, source, wait=True).close()
        events.append("second run in")

    waiter = threading.Thread(target=second_run)
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and events == []  # still waiting on the held shard
    events.append("holder closed")
    holder.close()
    waiter.join(timeout=10.0)
    assert not waiter.is_alive()
    assert events == ["holder closed", "second run in"]
    assert capfd.readouterr().err == (
        f"{tmp_path} is being written by another run (pid {os.getpid()} on {socket.gethostname()}, "
        "shard 0/1); waiting for it\n"
    )
    assert not list((tmp_path / ".locks").glob("shard-*"))
