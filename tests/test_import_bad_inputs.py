"""`evaluate import` on hostile inputs: every one is an error, a listed skip or a listed note that
names the file at fault, never a traceback or a silently changed label.

Each case builds a small source under tmp_path and returns the command line arguments (format
and source, without --out) and the file that must be named.
"""

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from evaluate.cli import main
from synth.dataset import Dataset

Case = Callable[[Path], tuple[list[str], Path]]


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _grey(h: int = 8, w: int = 10) -> np.ndarray:
    return np.full((h, w), 90, np.uint8)


def _mask(h: int = 8, w: int = 10, value: int = 255) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[1:3, 1:4] = value
    return mask


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _run(args: list[str], out: Path) -> Result:
    result = CliRunner().invoke(main, ["import", *args, "--out", str(out)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- sources


def _folders(tmp: Path) -> Path:
    """A valid class-folder source: one good and one crack image."""
    src = tmp / "src"
    _png(src / "good" / "g.png", _grey())
    _png(src / "crack" / "c.png", _grey())
    _png(src / "crack" / "c_mask.png", _mask())
    return src


def _yolo(tmp: Path, label: str, names: str = "names: [scratch]\n") -> tuple[list[str], Path]:
    src = tmp / "yolo"
    _write(src / "data.yaml", names)
    _png(src / "images" / "ok.png", np.zeros((20, 40), np.uint8))
    _write(src / "labels" / "ok.txt", "0 0.5 0.5 0.25 0.5\n")
    _png(src / "images" / "bad.png", np.zeros((20, 40), np.uint8))
    return ["yolo", str(src)], _write(src / "labels" / "bad.txt", label)


def _coco(tmp: Path, annotations: list[dict], images: list[dict] | None = None) -> tuple[list[str], Path]:
    src = tmp / "coco"
    for name in ("a.png", "b.png"):
        _png(src / name, _grey(16, 16))
    coco = {
        "images": images or [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 1, "name": "dent"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 4, 4]}, *annotations],
    }
    return ["coco", str(src / "instances.json")], _write(src / "instances.json", json.dumps(coco))


def _labelme(tmp: Path, bad: str | bytes) -> tuple[list[str], Path]:
    src = tmp / "lm"
    _png(src / "a.png", _grey(12, 12))
    shape = {"label": "scratch", "shape_type": "rectangle", "points": [[2, 1], [6, 5]]}
    _write(src / "a.json", json.dumps({"imagePath": "a.png", "shapes": [shape]}))
    _png(src / "b.png", _grey(12, 12))
    return ["labelme", str(src)], _write(src / "b.json", bad)


def _labelme_case(name: str, content: str | bytes | dict) -> Case:
    """A LabelMe case whose b.json holds `content` (a dict: one shape on b.png), named for its id."""
    if isinstance(content, dict):
        content = json.dumps({"imagePath": "b.png", "shapes": [content]})

    def case(tmp: Path) -> tuple[list[str], Path]:
        return _labelme(tmp, content)

    case.__name__ = name
    return case


# ----------------------------------------------------------------- errors: nothing written


def mask_of_other_size(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "crack" / "d.png", _grey())
    return ["folders", str(src)], _png(src / "crack" / "d_mask.png", _mask(9, 10))


def mask_drawn_on_the_exif_turned_photo(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 10x8, shown 8x10 by a viewer
    Image.fromarray(_grey()).save(src / "crack" / "d.jpg", exif=exif)
    return ["folders", str(src)], _png(src / "crack" / "d.png", _mask(10, 8))


def two_folders_one_class(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "Crack" / "e.png", _grey())
    _png(src / "Crack" / "e_mask.png", _mask())
    return ["folders", str(src)], src


def image_or_mask_ambiguous(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "crack" / "f.png", _grey())
    Image.fromarray(_grey()).save(src / "crack" / "f.bmp")
    Image.fromarray(_grey()).save(src / "crack" / "f.jpg")  # two images beside one .png
    return ["folders", str(src)], src / "crack" / "f.jpg"


def empty_folder(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "empty").mkdir()
    return ["folders", str(tmp / "empty")], tmp / "empty"


def mvtec_without_images(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "bottle" / "test" / "good").mkdir(parents=True)
    return ["mvtec", str(tmp / "bottle")], tmp / "bottle"


def yolo_class_beyond_names(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.2 0.2\n")


def yolo_negative_class(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "-1 0.5 0.5 0.1 0.1\n")


def yolo_names_with_a_gap(tmp: Path) -> tuple[list[str], Path]:
    args, _ = _yolo(tmp, "1 0.5 0.5 0.1 0.1\n", names="names: {0: scratch, 2: stain}\n")
    return args, tmp / "yolo" / "data.yaml"


def yolo_yaml_not_utf8(tmp: Path) -> tuple[list[str], Path]:
    args, _ = _yolo(tmp, "0 0.5 0.5 0.1 0.1\n", names="")
    return args, _write(tmp / "yolo" / "data.yaml", "names: [kratzer, \xfcbel]\n".encode("latin-1"))


def yolo_without_labels_folder(tmp: Path) -> tuple[list[str], Path]:
    _png(tmp / "yolo" / "images" / "train" / "a.png", _grey())
    return ["yolo", str(tmp / "yolo")], tmp / "yolo" / "labels"


def yolo_labels_in_another_layout(tmp: Path) -> tuple[list[str], Path]:
    _png(tmp / "yolo" / "images" / "train" / "a.png", _grey())
    _write(tmp / "yolo" / "labels" / "a.txt", "0 0.5 0.5 0.1 0.1\n")
    return ["yolo", str(tmp / "yolo")], tmp / "yolo" / "labels" / "train" / "a.txt"


def yolo_two_images_one_label(tmp: Path) -> tuple[list[str], Path]:
    args, _ = _yolo(tmp, "0 0.5 0.5 0.1 0.1\n")
    return args, _png(tmp / "yolo" / "images" / "bad.jpg", _grey())


def coco_unknown_image_id(tmp: Path) -> tuple[list[str], Path]:
    return _coco(tmp, [{"id": 2, "image_id": 99, "category_id": 1, "bbox": [1, 1, 2, 2]}])


def coco_unknown_category_id(tmp: Path) -> tuple[list[str], Path]:
    return _coco(tmp, [{"id": 2, "image_id": 2, "category_id": 5, "bbox": [1, 1, 2, 2]}])


def coco_annotation_without_category(tmp: Path) -> tuple[list[str], Path]:
    return _coco(tmp, [{"id": 2, "image_id": 2, "bbox": [1, 1, 2, 2]}])


def coco_duplicate_image_id(tmp: Path) -> tuple[list[str], Path]:
    return _coco(tmp, [], images=[{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}])


def coco_not_utf8(tmp: Path) -> tuple[list[str], Path]:
    args, path = _coco(tmp, [])
    _write(path, path.read_bytes().replace(b"dent", "d\xe9nt".encode("latin-1")))
    return args, path


def labelme_two_files_one_image(tmp: Path) -> tuple[list[str], Path]:
    shape = {"label": "hole", "points": [[1, 1], [4, 1], [4, 4]]}
    return _labelme(tmp, json.dumps({"imagePath": "a.png", "shapes": [shape]}))


def labelme_label_good(tmp: Path) -> tuple[list[str], Path]:
    return _labelme_case("", {"label": "good", "points": [[1, 1], [4, 1], [4, 4]]})(tmp)


def out_inside_source(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    return ["folders", str(src), "--out", str(src / "out")], src / "out"


ERRORS = [
    (mask_of_other_size, "is 10x9 px but its image"),
    (mask_drawn_on_the_exif_turned_photo, "EXIF orientation 6 turns it a quarter turn for viewing"),
    (two_folders_one_class, "class name 'crack' is given twice"),
    (image_or_mask_ambiguous, "cannot tell image from mask"),
    (empty_folder, "expected one folder per class, found no folder"),
    (mvtec_without_images, "found no image to import as mvtec"),
    (yolo_class_beyond_names, ":2: class 3 is not among the 1 class names from"),
    (yolo_negative_class, ":1: class -1 is not among the 1 class names"),
    (yolo_names_with_a_gap, "the keys of 'names' must be the class ids 0..1, got [0, 2]"),
    (yolo_yaml_not_utf8, "not UTF-8 text"),
    (yolo_without_labels_folder, "expected YOLO labels/ beside images/"),
    (yolo_labels_in_another_layout, "none of the 1 images under"),
    (yolo_two_images_one_label, "both become sample bad"),
    (coco_unknown_image_id, "annotations[1]: image_id 99 is not the id of any image"),
    (coco_unknown_category_id, "annotations[1]: category_id 5 is not among the category ids [1]"),
    (coco_annotation_without_category, "annotations[1]: expected 'category_id'"),
    (coco_duplicate_image_id, "images[1]: image id 1 is given twice"),
    (coco_not_utf8, "not UTF-8 text"),
    (labelme_two_files_one_image, "both label"),
    (labelme_label_good, "class name 'good' cannot be used"),
    (out_inside_source, "is inside the source folder"),
]


@pytest.mark.parametrize(("case", "message"), ERRORS, ids=[c.__name__ for c, _ in ERRORS])
def test_error_names_the_file_and_writes_nothing(tmp_path, case: Case, message: str):
    args, culprit = case(tmp_path)
    out = tmp_path / "out"
    if "--out" in args:  # the case chooses its own output folder
        args, out = args[:-2], Path(args[-1])
    result = _run(args, out)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert str(culprit) in result.output and message in result.output, result.output
    assert not out.exists()


BEFORE_THE_WRITER = [
    mask_of_other_size,
    two_folders_one_class,
    yolo_class_beyond_names,
    coco_unknown_image_id,
]


@pytest.mark.parametrize("case", BEFORE_THE_WRITER, ids=[c.__name__ for c in BEFORE_THE_WRITER])
def test_error_leaves_an_existing_dataset_byte_identical(tmp_path, case: Case):
    out = tmp_path / "out"
    assert _run(["folders", str(_folders(tmp_path / "first"))], out).exit_code == 0
    before = _snapshot(out)
    args, _ = case(tmp_path)
    assert _run(args, out).exit_code == 1
    assert _snapshot(out) == before


# ----------------------------------------------------------------- skips: the rest imported


def mask_without_image(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    return ["folders", str(src)], _png(src / "crack" / "lost_mask.png", _mask())


def defect_image_without_mask(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    return ["folders", str(src)], _png(src / "crack" / "d.png", _grey())


def good_image_with_a_defect_mask(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "good" / "h.png", _grey())
    return ["folders", str(src)], _png(src / "good" / "h_mask.png", _mask())


def faint_mask_only(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "crack" / "d.png", _grey())
    return ["folders", str(src)], _png(src / "crack" / "d_mask.png", _mask(value=100))


def float_mask(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "crack" / "d.png", _grey())
    cv2.imwrite(str(src / "crack" / "d_mask.tiff"), _mask().astype(np.float32))
    return ["folders", str(src)], src / "crack" / "d_mask.tiff"


def image_unreadable(tmp: Path) -> tuple[list[str], Path]:
    src = _folders(tmp)
    _png(src / "crack" / "d_mask.png", _mask())
    return ["folders", str(src)], _write(src / "crack" / "d.png", b"\x89PNG truncated")


def mvtec_mask_missing(tmp: Path) -> tuple[list[str], Path]:
    src = tmp / "bottle"
    _png(src / "train" / "good" / "000.png", _grey())
    _png(src / "test" / "crack" / "000.png", _grey())
    return ["mvtec", str(src)], src / "ground_truth" / "crack" / "000_mask.png"


def yolo_out_of_range(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "0 0.5 0.5 0.1 0.1\n0 1.2 0.5 0.1 0.1\n")


def yolo_box_beyond_the_edge(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "0 0.95 0.5 0.2 0.1\n")


def yolo_nan(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "0 nan 0.5 0.1 0.1\n")


def yolo_polygon_odd(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, "0 0.1 0.1 0.3 0.1 0.3\n")


def yolo_not_utf8(tmp: Path) -> tuple[list[str], Path]:
    return _yolo(tmp, b"0 0.5 0.5 0.1 0.1 \xff\n")


def yolo_label_without_image(tmp: Path) -> tuple[list[str], Path]:
    args, label = _yolo(tmp, "0 0.5 0.5 0.1 0.1\n")
    (tmp / "yolo" / "images" / "bad.png").unlink()
    return args, label


def coco_broken_rle(tmp: Path) -> tuple[list[str], Path]:
    rle = {"size": [16, 16], "counts": [1, 2]}
    return _coco(tmp, [{"id": 2, "image_id": 2, "category_id": 1, "segmentation": rle}])


def coco_polygon_outside_the_image(tmp: Path) -> tuple[list[str], Path]:
    polygon = [[2, 2, 50, 2, 50, 9, 2, 9]]
    return _coco(tmp, [{"id": 2, "image_id": 2, "category_id": 1, "segmentation": polygon}])


def coco_nan_polygon(tmp: Path) -> tuple[list[str], Path]:
    """pycocotools itself exhausts memory on this one (checked by hand), so it must not get it."""
    polygon = [[2, 2, float("nan"), 2, 9, 9]]
    return _coco(tmp, [{"id": 2, "image_id": 2, "category_id": 1, "segmentation": polygon}])


def coco_declared_size_differs(tmp: Path) -> tuple[list[str], Path]:
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png", "width": 32, "height": 32}]
    return _coco(tmp, [], images=images)


def coco_image_missing(tmp: Path) -> tuple[list[str], Path]:
    args, path = _coco(tmp, [])
    (tmp / "coco" / "b.png").unlink()
    return args, tmp / "coco" / "b.png"


SKIPS = [
    (mask_without_image, "a mask without"),
    (defect_image_without_mask, "no mask beside it"),
    (good_image_with_a_defect_mask, "marks 6 px as defect, but its image is in a good-class folder"),
    (faint_mask_only, "no labelled pixel, but its class is crack; "),
    (float_mask, "not a readable 8 or 16 bit mask image"),
    (image_unreadable, "not a readable image"),
    (mvtec_mask_missing, "does not exist"),
    (yolo_out_of_range, ":2: coordinates must lie in [0, 1]"),
    (yolo_box_beyond_the_edge, ":1: coordinates must lie in [0, 1]"),
    (yolo_nan, ":1: coordinates must be finite numbers"),
    (yolo_polygon_odd, ":1: expected 4 box values or an even number (>= 6)"),
    (yolo_not_utf8, "not UTF-8 text (byte 18 is 0xff)"),
    (yolo_label_without_image, "a label file without an image"),
    (coco_broken_rle, "annotations[1] (id 2): RLE counts must be whole numbers"),
    (coco_polygon_outside_the_image, "annotations[1] (id 2): coordinates reach (2..50, 2..9)"),
    (coco_nan_polygon, "annotations[1] (id 2): segmentation: expected finite numbers"),
    (coco_declared_size_differs, "says its image is 32x32 px, but the image is 16x16 px"),
    (coco_image_missing, "not a readable image"),
    (_labelme_case("labelme_bad_json", '{"shapes": [}'), "not valid JSON (line 1, column 13"),
    (_labelme_case("labelme_not_utf8", b'{"shapes": [], "x": "\xe9"}'), "not UTF-8 text"),
    (_labelme_case("labelme_no_image", json.dumps({"imagePath": "nope.png", "shapes": []})), "is not a file"),
    (
        _labelme_case("labelme_line_shape", {"label": "s", "shape_type": "line", "points": [[1, 1], [5, 5]]}),
        "'line'",
    ),
    (
        _labelme_case("labelme_circle_one_point", {"label": "h", "shape_type": "circle", "points": [[1, 1]]}),
        "a circle needs 2",
    ),
    (
        _labelme_case("labelme_points_not_numbers", {"label": "h", "points": [[1, 1], [2, "x"], [3, 3]]}),
        "expected finite numbers",
    ),
    (
        _labelme_case("labelme_no_label", {"shape_type": "polygon", "points": [[1, 1], [4, 1], [4, 4]]}),
        "expected a non-empty",
    ),
    (
        _labelme_case("labelme_outside", {"label": "h", "points": [[1, 1], [40, 1], [4, 4]]}),
        "outside the 12x12 px image",
    ),
]


@pytest.mark.parametrize(("case", "message"), SKIPS, ids=[c.__name__ for c, _ in SKIPS])
def test_skip_is_listed_with_its_reason_and_the_rest_imported(tmp_path, case: Case, message: str):
    args, culprit = case(tmp_path)
    result = _run(args, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"{culprit}" in result.output and message in result.output, result.output
    report = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert any(str(culprit) in s["file"] + s["reason"] and message in s["reason"] for s in report["skipped"])
    # the rest keeps its labels: the sources hold one good and/or one defect image besides the culprit
    expected_good = {"folders": [False, True], "mvtec": [True]}.get(args[0], [False])
    assert report["imported"] == len(expected_good)
    ds = Dataset(tmp_path / "out")
    assert sorted(s.good for split in ("train", "val", "test") for s in ds.samples(split)) == expected_good


# ----------------------------------------------------------------- rules, listed as notes


def test_a_mask_with_alpha_counts_only_its_opaque_pixels(tmp_path):
    src = _folders(tmp_path)
    layer = np.zeros((8, 10, 4), np.uint8)
    layer[...] = (255, 255, 255, 0)  # a transparent background, white under the transparency
    layer[1:3, 1:4] = (255, 0, 0, 255)  # a red defect of 6 px
    _png(src / "crack" / "c_mask.png", layer)
    assert _run(["folders", str(src)], tmp_path / "out").exit_code == 0
    ds = Dataset(tmp_path / "out")
    defects = [s for split in ("train", "val", "test") for s in ds.samples(split) if not s.good]
    assert [[i["area_px"] for i in s.meta["instances"]] for s in defects] == [[6]]


def test_mask_threshold_keeps_regions_at_128_and_lists_fainter_ones(tmp_path):
    src = _folders(tmp_path)
    mask = np.zeros((12, 12), np.uint8)
    mask[1:3, 1:3] = 255
    mask[5:7, 5:7] = 128
    mask[9:11, 9:11] = 100  # soft brush that never reaches half the range
    mask[3, 1:3] = 60  # anti-aliased edge of the 255 region: background, no note on its own
    _png(src / "crack" / "d.png", _grey(12, 12))
    culprit = _png(src / "crack" / "d_mask.png", mask)
    result = _run(["folders", str(src), "--split", "1", "0", "0"], tmp_path / "out")
    assert result.exit_code == 0
    note = f"note: {culprit}: 1 region(s) of 4 px with values below 128 (at most 100) are background"
    assert note in result.output
    sample = next(s for s in Dataset(tmp_path / "out").samples("train") if s.id == "crack__d")
    assert sorted(i["bbox"] for i in sample.meta["instances"]) == [[1, 1, 2, 2], [5, 5, 2, 2]]


def test_lone_mt_free_folder_is_good_not_a_defect_class(tmp_path):
    for name in ("exp1_num_1", "exp2_num_2"):
        _png(tmp_path / "src" / "MT_Free" / "Imgs" / f"{name}.jpg", _grey())
        _png(tmp_path / "src" / "MT_Free" / "Imgs" / f"{name}.png", np.zeros((8, 10), np.uint8))
    result = _run(["folders", str(tmp_path / "src")], tmp_path / "out")
    assert result.exit_code == 0 and "skipped" not in result.output, result.output
    ds = Dataset(tmp_path / "out")
    assert ds.classes == ()
    samples = [s for split in ("train", "val", "test") for s in ds.samples(split)]
    assert len(samples) == 2 and all(s.good for s in samples)


def test_yolo_object_smaller_than_a_pixel_is_a_note(tmp_path):
    args, label = _yolo(tmp_path, "0 0.5 0.5 0.25 0.5\n0 0.1 0.1 0.001 0.001\n")
    result = _run(args, tmp_path / "out")
    assert result.exit_code == 0
    assert f"note: {label}: 1 of 2 objects cover no pixel of their own" in result.output


def test_bad_group_pattern_is_one_line(tmp_path):
    result = _run(["folders", str(_folders(tmp_path)), "--group-pattern", "exp("], tmp_path / "out")
    assert result.exit_code == 1 and result.output.startswith("Error: --group-pattern 'exp(' is not a")
    assert not (tmp_path / "out").exists()


def test_help_describes_every_format_and_the_mask_rule():
    text = " ".join(CliRunner().invoke(main, ["import", "--help"]).output.split())
    for fmt in ("mvtec:", "folders:", "yolo:", "coco:", "labelme:", "Masks (mvtec, folders): a pixel is"):
        assert fmt in text
    assert "at least half the range (128" in text


def test_rerun_keeps_the_notes_of_samples_already_written(tmp_path):
    src = _folders(tmp_path)
    mask = _mask()
    mask[7, 9] = 40  # a faint speck apart from the defect
    culprit = _png(src / "crack" / "c_mask.png", mask)
    first = _run(["folders", str(src)], tmp_path / "out")
    again = _run(["folders", str(src)], tmp_path / "out")  # resumes: nothing is re-read
    note = f"note: {culprit}: 1 region(s) of 1 px with values below 128 (at most 40)"
    assert first.exit_code == again.exit_code == 0 and note in first.output and note in again.output
