"""The canonical dataset: layout, atomic resume, shard merging, and `synth verify`."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import Dataset, verify
from synth.errors import DataError, OutputError
from synth.render import render_dataset
from synth.writers import DatasetWriter


def render(tiny_scene: dict, out: Path, **kwargs) -> None:
    render_dataset(parse_config(tiny_scene), out, renderer="raster", progress=False, **kwargs)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "dataset.json"
    }


def plain_file_mode() -> int:
    """The permissions open() gives a new file: 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_layout_and_verify(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    assert verify(tmp_path) == []
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {plain_file_mode()}  # atomic writes keep the usual permissions, not mkstemp's 0600
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["splits"] == {"train": 4, "val": 2, "test": 4}
    assert [c["name"] for c in info["classes"]] == ["scratch", "pit", "water_stain"]
    assert [c["kind"] for c in info["classes"]] == ["defect", "defect", "impurity"]
    assert info["source"]["config_hash"] == parse_config(tiny_scene).digest()
    data_yaml = yaml.safe_load((tmp_path / "dataset.yaml").read_text())
    assert data_yaml["names"] == {0: "scratch", 1: "pit", 2: "water_stain"}
    dataset = Dataset(tmp_path)
    for sample in dataset.samples("test"):
        assert sample.image().shape == (64, 64, 3)
        assert sample.instance_map().dtype == np.uint16
        spec = sample.meta["spec"]
        assert spec["index"] == int(sample.id) and sample.meta["mm_per_px"] == pytest.approx(
            5 * 200 / 50 / 64
        )
    anomaly = tmp_path / "anomaly"
    train_good = sorted(p.name for p in (anomaly / "train" / "good").iterdir())
    assert train_good == [s.id + ".png" for s in dataset.samples("train")]  # train split is all good
    for folder in (anomaly / "test").iterdir():
        for image in folder.iterdir():
            meta = json.loads((tmp_path / "meta" / "test" / (image.stem + ".json")).read_text())
            assert meta["good"] == (folder.name == "good")
            if folder.name != "good":
                truth = cv2.imread(str(anomaly / "ground_truth" / folder.name / f"{image.stem}_mask.png"), 0)
                instances = cv2.imread(
                    str(tmp_path / "instances" / "test" / image.name), cv2.IMREAD_UNCHANGED
                )
                defect_ids = [i["instance_id"] for i in meta["instances"] if i["kind"] == "defect"]
                np.testing.assert_array_equal(truth == 255, np.isin(instances, defect_ids))


def test_resume_skips_finished_and_redoes_unfinished(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    before = tree(tmp_path)
    (tmp_path / "meta" / "test" / "000007.json").unlink()  # as if interrupted before the meta
    summary = render_dataset(parse_config(tiny_scene), tmp_path, renderer="raster", progress=False)
    assert (summary.rendered, summary.skipped) == (1, 9)
    assert tree(tmp_path) == before  # deterministic: the redone sample is identical


def test_interrupted_run_leaves_no_partial_files(tiny_scene: dict, tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    original = DatasetWriter.write

    def crash_on_fourth(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        render(tiny_scene, tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))
    assert len(list((tmp_path / "meta").rglob("*.json"))) == 3
    monkeypatch.setattr(DatasetWriter, "write", original)
    summary = render_dataset(parse_config(tiny_scene), tmp_path, renderer="raster", progress=False)
    assert (summary.rendered, summary.skipped) == (7, 3)
    assert verify(tmp_path) == []


def test_shards_merge_into_the_single_run(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path / "one")
    for i in range(3):
        render(tiny_scene, tmp_path / "sharded", shard=(i, 3), finalize=(i == 2))
    whole, sharded = tree(tmp_path / "one"), tree(tmp_path / "sharded")
    assert whole.keys() == sharded.keys()
    differing = [k for k in whole if whole[k] != sharded[k] and not k.startswith("dataset.yaml")]
    assert differing == []


def test_verify_names_every_problem(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    ids = [s.id for s in Dataset(tmp_path).samples("test")]
    (tmp_path / "labels" / "test" / f"{ids[0]}.txt").unlink()
    mask_path = tmp_path / "masks" / "test" / f"{ids[1]}.png"
    cv2.imwrite(str(mask_path), np.full((64, 64), 9, np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "test" / f"{ids[2]}.png"), np.zeros((32, 64, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "test" / "999999.png"), np.zeros((64, 64, 3), np.uint8))
    coco_path = tmp_path / "coco" / "val.json"
    coco = json.loads(coco_path.read_text())
    coco["images"] = coco["images"][1:]
    coco_path.write_text(json.dumps(coco))
    problems = "\n".join(verify(tmp_path))
    assert f"test/{ids[0]}: missing labels/test/{ids[0]}.txt" in problems
    assert f"test/{ids[1]}: mask has unknown class ids [9]" in problems
    assert f"test/{ids[2]}: image is (32, 64), meta says (64, 64)" in problems
    assert "images/test/999999.png: image without meta" in problems
    assert "not in the COCO file" in problems
    result = CliRunner().invoke(synth_cli, ["verify", str(tmp_path)])
    assert result.exit_code == 1 and "problem(s)" in result.output


def test_verify_checks_dataset_yaml(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    data_yaml = tmp_path / "dataset.yaml"
    again = "run the command that made the dataset again to rewrite it"
    data_yaml.write_text("nonsense\n")
    assert verify(tmp_path) == [f"dataset.yaml: expected a mapping with path, splits and names; {again}"]
    data_yaml.write_text(yaml.safe_dump({"train": "elsewhere", "val": "images/val", "names": {0: "dent"}}))
    assert verify(tmp_path) == [
        f"dataset.yaml: names {{0: 'dent'}}, but the classes are {{0: 'scratch', 1: 'pit', 2: 'water_stain'}}"
        f"; {again}",
        f"dataset.yaml: train is 'elsewhere', expected 'images/train'; {again}",
        f"dataset.yaml: test is None, expected 'images/test'; {again}",
    ]
    data_yaml.unlink()
    assert verify(tmp_path) == [f"dataset.yaml: missing; {again}"]


def test_a_failed_write_is_one_error_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    from synth import writers

    target = tmp_path / "a.json"
    target.write_text("old")

    def full(path: Path, mode: str):
        open(path, mode).close()  # noqa: SIM115 (the temp file exists when the disk fills)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers, "open", full, raising=False)
    with pytest.raises(OutputError, match=r"a.json: no space left on the disk \(.* free there\)") as raised:
        writers.atomic_write_text(target, "new")
    assert raised.value.__suppress_context__ and target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    unlink = Path.unlink

    def refuse(path: Path, missing_ok: bool = False) -> None:  # a read-only folder refuses the clean-up too
        unlink(path, missing_ok)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OutputError, match="no space left on the disk"):
        writers.atomic_write_text(target, "new")


def test_writer_refuses_other_classes(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    old = parse_config(tiny_scene).digest()
    tiny_scene["defects"][0]["name"] = "gouge"
    with pytest.raises(DataError) as error:
        render(tiny_scene, tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: this dataset was made with other parameters "
        "(classes ['scratch', 'pit', 'water_stain'] -> ['gouge', 'pit', 'water_stain']; "
        f"config_hash {old!r} -> {parse_config(tiny_scene).digest()!r}; "
        "config.defects.0.name 'scratch' -> 'gouge'); "
        "pass --overwrite to replace it, or choose another --out"
    )


def test_verify_on_non_dataset(tmp_path: Path) -> None:
    assert verify(tmp_path) == [f"{tmp_path}: not a defectsynth dataset (no dataset.json)"]


def copy_sample(root: Path, image_id: str, source: str, target: str) -> None:
    kinds = (("images", ".png"), ("masks", ".png"), ("instances", ".png"), ("labels", ".txt"))
    for kind, suffix in (*kinds, ("labels_obb", ".txt")):
        (root / kind / target / f"{image_id}{suffix}").write_bytes(
            (root / kind / source / f"{image_id}{suffix}").read_bytes()
        )
    meta = json.loads((root / "meta" / source / f"{image_id}.json").read_text())
    (root / "meta" / target / f"{image_id}.json").write_text(json.dumps({**meta, "split": target}))


def test_verify_reports_an_id_in_two_splits_and_counts_off_dataset_json(
    tiny_scene: dict, tmp_path: Path
) -> None:
    render(tiny_scene, tmp_path)
    copy_sample(tmp_path, "000000", "train", "val")  # a stale train image that is also in val
    assert verify(tmp_path) == [
        "val/000000: not in the COCO file",
        "sample 000000 is in more than one split: train, val",
        "dataset.json: val lists 2 samples (1 good), found 3 (2 good)",
        "val: 3 samples, but the recorded config makes only 2",
    ]


def test_verify_reports_a_half_finished_sharded_render(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path, shard=(0, 3), finalize=False)  # shards 1 and 2 never ran
    unfinished = [
        f"{split}: {found} of the {expected} samples the recorded config makes "
        "(an unfinished render: run the same command again to finish it)"
        for split, found, expected in (("train", 2, 4), ("val", 0, 2), ("test", 2, 4))
    ]
    assert verify(tmp_path) == [
        "coco/train.json: missing (run `synth render` again to finish the dataset)",
        "coco/test.json: missing (run `synth render` again to finish the dataset)",
        "dataset.json: no split counts: the dataset was never finalized "
        "(run the same `synth render` again to finish it)",
        *unfinished,
    ]
    render(tiny_scene, tmp_path, shard=(1, 3))  # finalized, but shard 2 is still missing
    assert verify(tmp_path) == [
        f"{split}: {found} of the {expected} samples the recorded config makes "
        "(an unfinished render: run the same command again to finish it)"
        for split, found, expected in (("train", 3, 4), ("val", 1, 2), ("test", 3, 4))
    ]
    render(tiny_scene, tmp_path, shard=(2, 3))
    assert verify(tmp_path) == []
    (tmp_path / "dataset.json").unlink()
    assert verify(tmp_path) == [f"{tmp_path}: not a defectsynth dataset (no dataset.json)"]


def test_verify_reports_damaged_files_without_aborting(tiny_scene: dict, tmp_path: Path) -> None:
    render(tiny_scene, tmp_path)
    (tmp_path / "meta" / "test" / "000006.json").write_text("")
    (tmp_path / "meta" / "test" / "000007.json").write_text('{"id": "000007"}')
    image = tmp_path / "images" / "train" / "000001.png"
    image.write_bytes(image.read_bytes()[:100])
    (tmp_path / "labels" / "val" / "000004.txt").write_bytes(b"\xff\xfe")
    (tmp_path / "coco" / "train.json").write_text("{")
    result = CliRunner().invoke(synth_cli, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "coco/train.json: unreadable (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1))",
        "train/000001: cannot read images/train/000001.png (damaged or truncated)",
        "val/000004: cannot be checked ('utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte)",
        "meta/test/000006.json: empty file",
        "meta/test/000007.json: lacks width, height, good, instances",
        "dataset.json: test lists 4 samples (2 good), found 2 (1 good)",
        "test: 2 of the 4 samples the recorded config makes "
        "(an unfinished render: run the same command again to finish it)",
        f"{tmp_path}: 7 problem(s)",
    ]
