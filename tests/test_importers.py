"""Importers on small generated fixtures of every format, including corrupt and mismatched files."""

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from evaluate import importers as imp
from evaluate.cli import main
from evaluate.formats.coco import _rle_mask
from evaluate.formats.source import SourceItem, Unreadable, no_labels, read_image
from evaluate.formats.split import assign_splits
from synth.config import SPLITS
from synth.dataset import Dataset, verify


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def _grey(h=8, w=10, value=90):
    return np.full((h, w), value, np.uint8)


def _import(source, out, **kw):
    report = imp.import_dataset(source, out, fractions=(1.0, 0.0, 0.0), **kw)
    assert verify(out) == []
    return report, Dataset(out)


def _instances(ds: Dataset) -> dict[str, list[tuple[str, list[int], int]]]:
    names = {c.id: c.name for c in ds.classes}
    return {
        s.id: [(names[i["class_id"]], i["bbox"], i["area_px"]) for i in s.meta["instances"]]
        for s in ds.samples("train")
    }


def test_read_image_grey_alpha_rgba_16bit(tmp_path):
    grey = read_image(_png(tmp_path / "g.png", _grey(value=77)))
    assert grey.shape == (8, 10, 3) and (grey == 77).all()
    la = np.dstack([_grey(value=100), _grey(value=30)])
    assert (read_image(_png(tmp_path / "la.png", la, "LA")) == 100).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    assert read_image(_png(tmp_path / "rgba.png", rgba, "RGBA"))[0, 0].tolist() == [255, 0, 0]
    deep = np.full((4, 4), 257 * 100, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert (read_image(tmp_path / "deep.png") == 100).all()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(Unreadable, match="broken.png: not a readable image"):
        read_image(tmp_path / "broken.png")


def _class_folders(root: Path) -> Path:
    _png(root / "MT_Free" / "Imgs" / "exp1_num_1.png", _grey())
    _png(root / "MT_Free" / "Imgs" / "exp2_num_2.png", _grey())
    mask = np.zeros((8, 10), np.uint8)
    mask[1:3, 1:4] = 255  # 6 px
    mask[6, 8] = 200  # one-pixel defect (anti-aliased value above 128)
    mask[5, 0] = 100  # below 128: background
    Image.fromarray(_grey()).save(_mkdir(root / "MT_Crack" / "Imgs") / "exp1_num_3.bmp")
    _png(root / "MT_Crack" / "Imgs" / "exp1_num_3.png", mask)
    _png(root / "MT_Crack" / "Imgs" / "exp2_num_4.png", _grey())  # <stem>_mask pairing
    _png(root / "MT_Crack" / "Imgs" / "exp2_num_4_mask.png", mask)
    (root / "MT_Crack" / "Imgs" / "exp1_num_5.jpg").write_bytes(b"corrupt")
    _png(root / "MT_Crack" / "Imgs" / "exp1_num_5.png", mask)
    Image.fromarray(_grey()).save(root / "MT_Crack" / "Imgs" / "exp1_num_6.bmp")
    _png(root / "MT_Crack" / "Imgs" / "exp1_num_6.png", np.zeros((8, 10), np.uint8))
    return root


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_class_folders(tmp_path):
    source = imp.scan("folders", _class_folders(tmp_path / "src"))
    assert source.class_names == ["crack"]
    report, ds = _import(source, tmp_path / "out")
    assert [c.to_dict() for c in ds.classes] == [{"id": 1, "name": "crack", "kind": "defect"}]
    got = _instances(ds)
    expected = [("crack", [1, 1, 3, 2], 6), ("crack", [8, 6, 1, 1], 1)]
    assert got["MT_Crack__Imgs__exp1_num_3"] == expected
    assert got["MT_Crack__Imgs__exp2_num_4"] == expected
    assert got["MT_Free__Imgs__exp1_num_1"] == []
    assert report["imported"] == 4
    skipped = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    imgs = tmp_path / "src" / "MT_Crack" / "Imgs"
    assert skipped == {
        "exp1_num_5.jpg": f"{imgs}/exp1_num_5.jpg: not a readable image",
        "exp1_num_6.bmp": f"{imgs}/exp1_num_6.png: no labelled pixel, but its class is crack",
    }
    # The value-100 pixel is background by the mask rule, and each mask holding one says so.
    faint = "1 region(s) of 1 px with values below 128 (at most 100) are background by the mask rule"
    assert report["notes"] == [f"{imgs}/exp1_num_3.png: {faint}", f"{imgs}/exp2_num_4_mask.png: {faint}"]
    assert json.loads((tmp_path / "out" / "import_report.json").read_text())["skipped"]
    assert (tmp_path / "out/anomaly/test").exists() or (tmp_path / "out/anomaly/train/good").exists()


def test_mask_of_other_size_is_an_error_naming_both(tmp_path):
    src = tmp_path / "src"
    _png(src / "good" / "a.png", _grey())
    _png(src / "dent" / "b.png", _grey())
    _png(src / "dent" / "b_mask.png", np.zeros((9, 10), np.uint8))
    result = CliRunner().invoke(main, ["import", "folders", str(src), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"mask {src}/dent/b_mask.png is 10x9 px but its image {src}/dent/b.png is 10x8 px" in result.output
    assert not (tmp_path / "o").exists()  # checked while scanning, before anything is written


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_import_that_skips_every_image_is_an_error_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    _png(src / "dent" / "b.png", _grey())
    _png(src / "dent" / "b_mask.png", np.zeros((8, 10), np.uint8))  # a defect class, nothing labelled
    (src / "dent" / "c.jpg").write_bytes(b"corrupt")
    _png(src / "dent" / "c.png", np.full((8, 10), 255, np.uint8))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import", "folders", str(src), "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    error = result.output[result.output.index("Error: ") :].splitlines()
    assert error == [
        f"Error: {src}: nothing imported as folders: all 2 images were skipped, so nothing was "
        f"written to {out}; the 2 skips:",
        f"  skipped {src}/dent/b.png: {src}/dent/b_mask.png: no labelled pixel, but its class is dent",
        f"  skipped {src}/dent/c.jpg: {src}/dent/c.jpg: not a readable image",
    ]
    assert not out.exists()
    # Not even --overwrite of an existing dataset touches it: nothing is removed for nothing.
    _import(imp.scan("folders", _class_folders(tmp_path / "other")), out)
    before = _files(out)
    result = CliRunner().invoke(main, ["import", "folders", str(src), "--out", str(out), "--overwrite"])
    assert result.exit_code == 1 and "nothing imported as folders" in result.output
    assert _files(out) == before


def test_mvtec(tmp_path):
    src = tmp_path / "bottle"
    _png(src / "train" / "good" / "000.png", _grey())
    _png(src / "test" / "good" / "000.png", _grey())
    _png(src / "test" / "broken_large" / "000.png", _grey())
    mask = np.zeros((8, 10), np.uint8)
    mask[2:4, 5:9] = 255
    _png(src / "ground_truth" / "broken_large" / "000_mask.png", mask)
    _, ds = _import(imp.scan("mvtec", src), tmp_path / "out")
    got = _instances(ds)
    assert got == {
        "test__broken_large__000": [("broken_large", [5, 2, 4, 2], 8)],
        "test__good__000": [],
        "train__good__000": [],
    }


def test_yolo_detect_and_segment(tmp_path):
    src = _mkdir(tmp_path / "yolo")
    (src / "data.yaml").write_text("names: {0: scratch, 1: stain}\n")
    for name in ("box", "poly", "good", "bad"):
        _png(src / "images" / "train" / f"{name}.png", np.zeros((20, 40), np.uint8))
    labels = _mkdir(src / "labels" / "train")
    (labels / "box.txt").write_text("0 0.5 0.5 0.25 0.5\n")  # 10 x 10 px box centred at (20, 10)
    (labels / "poly.txt").write_text("1 0.1 0.1 0.3 0.1 0.3 0.6 0.1 0.6\n")
    (labels / "good.txt").write_text("")
    (labels / "bad.txt").write_text("0 0.5 oops 0.1 0.1\n")
    report, ds = _import(imp.scan("yolo", src), tmp_path / "out", impurities=["stain"])
    assert [(c.name, c.kind) for c in ds.classes] == [("scratch", "defect"), ("stain", "impurity")]
    got = _instances(ds)
    assert got["train__box"] == [("scratch", [15, 5, 10, 10], 100)]
    # polygon vertices at pixel centres (4.5, 2.5)..(12.5, 12.5) fill columns 4..12, rows 2..12
    assert got["train__poly"] == [("stain", [4, 2, 9, 11], 99)]
    assert got["train__good"] == []
    assert [s for s in ds.samples("train") if s.id == "train__poly"][0].good  # impurity only
    assert "bad.txt:1: expected numbers" in report["skipped"][0]["reason"]


def test_coco_polygon_rle_and_box(tmp_path):
    from pycocotools import mask as mask_utils

    src = _mkdir(tmp_path / "coco")
    for name in ("a.png", "b.png", "c.png"):
        _png(src / name, _grey(16, 16))
    rle_mask = np.zeros((16, 16), np.uint8, order="F")
    rle_mask[10:12, 3:6] = 1
    rle = mask_utils.encode(rle_mask)
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 16, "width": 16},
            {"id": 2, "file_name": "b.png", "height": 16, "width": 16},
            {"id": 3, "file_name": "c.png", "height": 16, "width": 16},
        ],
        "categories": [{"id": 7, "name": "dent"}, {"id": 3, "name": "pit"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "bbox": [2, 2, 4, 4],
                "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [3, 10, 3, 2],
                "segmentation": {"size": [16, 16], "counts": rle["counts"].decode()},
            },
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [8, 8, 2, 3]},
        ],
    }
    (src / "instances.json").write_text(json.dumps(coco))
    source = imp.scan("coco", src / "instances.json")
    assert source.class_names == ["pit", "dent"]  # ordered by category id
    _, ds = _import(source, tmp_path / "out")
    got = _instances(ds)
    assert got["a"] == [("dent", [2, 2, 4, 4], 16), ("pit", [3, 10, 3, 2], 6)]
    assert got["b"] == [("pit", [8, 8, 2, 3], 6)]
    assert got["c"] == []


def test_coco_missing_field_is_clear(tmp_path):
    (tmp_path / "x.json").write_text('{"images": []}')
    with pytest.raises(imp.ImportFailure, match="x.json: COCO field 'annotations' is missing"):
        imp.scan("coco", tmp_path / "x.json")


def test_labelme_polygon_rectangle_and_embedded_image(tmp_path):
    src = _mkdir(tmp_path / "lm")
    _png(src / "a.png", _grey(12, 12))
    doc = {
        "imagePath": "a.png",
        "shapes": [
            {"label": "scratch", "shape_type": "rectangle", "points": [[6, 5], [2, 1]]},
            {"label": "hole", "points": [[8, 8], [10, 8], [10, 10], [8, 10]]},  # polygon by default
        ],
    }
    (src / "a.json").write_text(json.dumps(doc))
    _png(tmp_path / "b.png", _grey(12, 12))
    embedded = {
        "imagePath": "missing.png",
        "shapes": [],
        "imageData": base64.b64encode((tmp_path / "b.png").read_bytes()).decode(),
    }
    (src / "b.json").write_text(json.dumps(embedded))
    (src / "c.json").write_text(json.dumps({**embedded, "imageData": "not base64 at all!"}))
    (src / "other.json").write_text('{"not": "labelme"}')
    source = imp.scan("labelme", src)
    assert source.class_names == ["scratch", "hole"]
    # Embedded images are decoded at import from the JSON itself: no temporary files.
    assert [(i.id, i.image.name, i.image_in_json) for i in source.items] == [
        ("a", "a.png", False),
        ("b", "b.json", True),
        ("c", "c.json", True),
    ]
    report, ds = _import(source, tmp_path / "out")
    got = _instances(ds)
    assert got == {"a": [("scratch", [2, 1, 5, 5], 25), ("hole", [8, 8, 3, 3], 9)], "b": []}
    assert report["skipped"] == [
        {
            "file": str(src / "other.json"),
            "reason": f"{src / 'other.json'}: not a LabelMe file (expected an object with a 'shapes' list)",
        },
        {"file": str(src / "c.json"), "reason": f"{src / 'c.json'}: not a readable image"},
    ]


def _items(n_good: int, n_bad: int) -> list[SourceItem]:
    items = []
    for i in range(n_good + n_bad):
        stratum = "good" if i < n_good else "crack"
        items.append(SourceItem(f"s{i}", Path(f"exp{i % 2}_num_{i}.png"), stratum, no_labels))
    return items


def test_splits_deterministic_and_stratified():
    items = _items(20, 10)
    a = assign_splits(items, (0.6, 0.2, 0.2), seed=1, group_pattern=r"exp\d+")
    assert a == assign_splits(items, (0.6, 0.2, 0.2), seed=1, group_pattern=r"exp\d+")
    assert a != assign_splits(items, (0.6, 0.2, 0.2), seed=2, group_pattern=r"exp\d+")
    for stratum, group, n in (("good", 0, 10), ("good", 1, 10), ("crack", 0, 5), ("crack", 1, 5)):
        ids = [it.id for it in items if it.stratum == stratum and it.image.name.startswith(f"exp{group}")]
        counts = [sum(a[i] == s for i in ids) for s in SPLITS]
        assert counts == ([6, 2, 2] if n == 10 else [3, 1, 1])


def test_split_of_a_stratum_ignores_the_others():
    alone = assign_splits(_items(20, 0), seed=0)
    mixed = assign_splits(_items(20, 7), seed=0)
    assert {k: mixed[k] for k in alone} == alone


def test_bad_fractions():
    with pytest.raises(imp.ImportFailure, match="summing to 1"):
        assign_splits(_items(2, 0), (0.5, 0.5, 0.5))


@pytest.mark.real
def test_magnetic_tile_scan():
    root = Path(__file__).resolve().parents[2] / "shared" / "real" / "magnetic_tile"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    source = imp.scan("folders", root)
    assert source.class_names == ["blowhole", "break", "crack", "fray", "uneven"]
    assert sum(it.stratum == "good" for it in source.items) == 485


def test_rle_decoder_matches_pycocotools():
    """The bounds-checked RLE decoder gives pycocotools' own masks (random and edge cases)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    masks = [rng.random((37, 23)) < p for p in (0.0, 0.02, 0.5, 0.98, 1.0)]
    masks.append(np.kron(rng.random((4, 3)) < 0.5, np.ones((100, 100), bool)))  # long runs
    for mask in masks:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        seg = {"size": rle["size"], "counts": rle["counts"].decode()}
        assert (_rle_mask(seg, mask.shape, "x") == mask).all()
