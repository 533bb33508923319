"""Importing line-scan strips and patch sets as users have them: tiles at import, the valid
region, the `masks` format (AITEX- and leather-like layouts) and the odd files each set holds.

Every source is a tiny synthetic one made in tmp_path; one test reads the real sets if present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from evaluate import importers as imp
from evaluate.cli import main
from evaluate.formats.cutting import valid_window
from evaluate.formats.masks import CLASS_MAPS
from evaluate.formats.source import read_image
from synth.dataset import Dataset
from synth.tiles import Tile
from tests.conftest import REAL

AITEX_OPTIONS = ["--class-pattern", r"^\d+_(\d+)_", "--class-map", "aitex"]
VALID_REGION = ["--valid-region", "saturated-columns"]
ALL_TRAIN = ["--split", "1", "0", "0"]  # every image in train


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def _strip(seed: int, width: int = 70, height: int = 16, band: int = 0, right_band: int = 0) -> np.ndarray:
    """Grey fabric-like noise with a saturated white band at the left (and right) edge."""
    strip = np.random.default_rng(seed).integers(40, 200, (height, width), dtype=np.uint8)
    strip[:, :band] = 255
    strip[:, width - right_band :] = 255
    if band:
        strip[3, band - 1] = 90  # a dark speck in the band: the column's median stays saturated
    return strip


def _defect_mask(
    width: int = 70, height: int = 16, box: tuple[int, int, int, int] = (30, 4, 44, 9)
) -> np.ndarray:
    """An anti-aliased defect: a 255 core inside a ring of 100 (below the threshold: background)."""
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), np.uint8)
    mask[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = 100
    mask[y0:y1, x0:x1] = 255
    return mask


def _run(args: list[str], out: Path) -> Result:
    result = CliRunner().invoke(main, ["import", *args, "--out", str(out)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _report(out: Path) -> dict:
    return json.loads((out / "import_report.json").read_text())


def _samples(out: Path) -> list:
    dataset = Dataset(out)
    return [s for split in ("train", "val", "test") for s in dataset.samples(split)]


def _aitex_like(root: Path, n_good: int = 6, n_defect: int = 6) -> Path:
    """Defect_images/nnnn_ddd_ff.png with Mask_images/<stem>_mask.png, NoDefect_images/<roll>/;
    grey+alpha files among them and a white band at the left of some strips."""
    for n in range(n_defect):
        stem = f"{n + 1:04d}_{'019' if n % 2 else '002'}_0{n % 3}"
        strip = _strip(n, band=10 * (n % 2))
        if n % 3 == 0:  # stored as grey + alpha, as some AITEX strips are
            _png(root / "Defect_images" / f"{stem}.png", np.dstack([strip, np.full_like(strip, 255)]), "LA")
        else:
            _png(root / "Defect_images" / f"{stem}.png", strip)
        _png(root / "Mask_images" / f"{stem}_mask.png", _defect_mask())
    for n in range(n_good):
        _png(
            root / "NoDefect_images" / f"roll{n % 2}" / f"{n + 50:04d}_000_0{n % 2}.png",
            _strip(100 + n, band=8),
        )
    return root


# ----------------------------------------------------------------- tiling at import


def test_tiles_reassemble_into_the_strip_and_its_mask(tmp_path: Path) -> None:
    src = tmp_path / "aitex"
    _png(src / "Defect_images" / "0001_002_00.png", _strip(0))
    _png(src / "Mask_images" / "0001_002_00_mask.png", _defect_mask())
    out = tmp_path / "out"
    result = _run(["masks", str(src), *AITEX_OPTIONS, "--tile", "16", *ALL_TRAIN], out)
    assert result.exit_code == 0, result.output
    tiles = _samples(out)
    # 70 px at most 16 apart: 5 tiles, spread evenly with the last flush with the border
    assert sorted(s.meta["spec"]["offset"][0] for s in tiles) == [0, 14, 27, 40, 54]
    assert sorted(s.id for s in tiles)[:2] == ["0001_002_00_x0000", "0001_002_00_x0014"]
    strip, image, mask = _strip(0), np.zeros((16, 70, 3), np.uint8), np.zeros((16, 70), np.uint8)
    for tile in tiles:
        spec = tile.meta["spec"]
        assert spec["source_id"] == "0001_002_00" and spec["source_class"] == "broken_end"
        assert spec["source_file"] == str(src / "Defect_images" / "0001_002_00.png")
        x, y = spec["offset"]
        assert y == 0 and tile.image().shape == (16, 16, 3)
        image[:, x : x + 16] = tile.image()
        mask[:, x : x + 16] = tile.mask()
    np.testing.assert_array_equal(image, np.dstack([strip] * 3))
    np.testing.assert_array_equal(mask, (_defect_mask() >= 128) * 1)  # class id 1, the core only
    # the defect spans x 30..43: tiles at 27 and 40 hold its parts; the others are good
    assert {s.meta["spec"]["offset"][0] for s in tiles if not s.good} == {27, 40}
    report = _report(out)
    assert report["source_images"] == {"train": 1, "val": 0, "test": 0}
    assert report["cutting"]["tile"] == 16 and report["dropped_tiles"] == []
    assert any("3 tiles of defect-class images hold no labelled pixel" in n for n in report["notes"])


def test_a_stride_overlaps_tiles_and_rows_get_a_y_offset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "images" / "cut_1.png", _strip(1, width=24, height=24))
    _png(src / "masks" / "cut_1.png", _defect_mask(24, 24, (2, 2, 6, 6)))
    out = tmp_path / "out"
    assert _run(["masks", str(src), "--tile", "16", "--stride", "8", *ALL_TRAIN], out).exit_code == 0
    tiles = {s.id: s for s in _samples(out)}
    assert sorted(tiles) == ["cut_1_x0000", "cut_1_x0000_y0008", "cut_1_x0008", "cut_1_x0008_y0008"]
    np.testing.assert_array_equal(
        tiles["cut_1_x0008_y0008"].image(), np.dstack([_strip(1, 24, 24)[8:, 8:]] * 3)
    )
    assert tiles["cut_1_x0008_y0008"].meta["spec"]["offset"] == [8, 8]


def test_all_tiles_of_a_strip_land_in_one_split(tmp_path: Path) -> None:
    src = _aitex_like(tmp_path / "aitex", n_good=10, n_defect=10)
    out = tmp_path / "out"
    result = _run(["masks", str(src), *AITEX_OPTIONS, "--tile", "16", *VALID_REGION], out)
    assert result.exit_code == 0, result.output
    split_of: dict[str, set[str]] = {}
    for sample in _samples(out):
        split_of.setdefault(sample.meta["spec"]["source_id"], set()).add(sample.split)
    assert len(split_of) == 20
    assert all(len(splits) == 1 for splits in split_of.values()), split_of
    assert {next(iter(s)) for s in split_of.values()} == {"train", "val", "test"}


# ----------------------------------------------------------------- the valid region


def test_valid_region_crops_a_white_band_and_keeps_a_strip_without_one(tmp_path: Path) -> None:
    src = tmp_path / "aitex"
    _png(src / "Defect_images" / "0001_002_00.png", _strip(0, band=12, right_band=3))
    _png(src / "Mask_images" / "0001_002_00_mask.png", _defect_mask())
    _png(src / "NoDefect_images" / "r" / "0002_000_00.png", _strip(2))
    out = tmp_path / "out"
    args = ["masks", str(src), *AITEX_OPTIONS, *VALID_REGION, *ALL_TRAIN]
    result = _run(args, out)
    assert result.exit_code == 0, result.output
    samples = {s.id: s for s in _samples(out)}
    banded, whole = samples["0001_002_00"], samples["r__0002_000_00"]
    assert banded.meta["spec"]["offset"] == [12, 0] and banded.image().shape == (16, 55, 3)
    np.testing.assert_array_equal(banded.image()[..., 0], _strip(0, band=12, right_band=3)[:, 12:67])
    np.testing.assert_array_equal(banded.mask() > 0, (_defect_mask() >= 128)[:, 12:67])
    assert whole.meta["spec"]["offset"] == [0, 0] and whole.image().shape == (16, 70, 3)
    notes = _report(out)["notes"]
    assert any(
        "0001_002_00.png: --valid-region saturated-columns keeps columns 12..66 of 70: 12 at the left "
        "and 3 at the right have a median >= 250" in n
        for n in notes
    )
    assert not any("0002_000_00.png: --valid-region" in n for n in notes)  # kept whole, nothing to say


def test_valid_region_rule_by_hand() -> None:
    image = np.dstack([_strip(0, band=5, right_band=2)] * 3)
    assert valid_window(image, "saturated-columns") == Tile(5, 0, 68, 16)
    assert valid_window(image, "saturated-columns", saturation=256) == Tile(0, 0, 70, 16)
    assert valid_window(image, None) == Tile(0, 0, 70, 16)
    image[..., 2] = 200  # white needs every channel saturated: a yellow band is surface
    assert valid_window(image, "saturated-columns") == Tile(0, 0, 70, 16)
    assert valid_window(np.full((4, 4, 3), 255, np.uint8), "saturated-columns") is None


def test_labels_in_the_cropped_band_are_counted_or_skip_their_image(tmp_path: Path) -> None:
    src = tmp_path / "aitex"
    for stem, box in (("0001_002_00", (5, 4, 40, 9)), ("0002_002_00", (2, 4, 8, 9))):
        _png(src / "Defect_images" / f"{stem}.png", _strip(0, band=10))
        _png(src / "Mask_images" / f"{stem}_mask.png", _defect_mask(box=box))
    out = tmp_path / "out"
    args = ["masks", str(src), *AITEX_OPTIONS, *VALID_REGION, *ALL_TRAIN]
    assert _run(args, out).exit_code == 0
    report = _report(out)
    assert [s.id for s in _samples(out)] == ["0001_002_00"]
    assert any(
        "0001_002_00_mask.png: 25 of its 175 labelled px lie outside the valid region" in n
        for n in report["notes"]
    )
    (skip,) = report["skipped"]
    assert skip["file"].endswith("0002_002_00.png")
    assert "30 of its 30 labelled px lie outside the valid region" in skip["reason"]
    assert "not imported as good" in skip["reason"]


def test_a_tile_mostly_outside_the_valid_region_is_dropped_and_listed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "good" / "a.png", _strip(0, width=40, band=30))  # 10 valid columns: 10/16 of a tile
    _png(src / "good" / "b.png", _strip(1, width=40, band=34))  # 6 valid columns: 6/16
    _png(src / "masks" / "unused_placeholder.png", np.zeros((4, 4), np.uint8))
    out = tmp_path / "out"
    args = ["masks", str(src), "--tile", "16", *VALID_REGION, *ALL_TRAIN]
    result = _run(args, out)
    assert result.exit_code == 0, result.output
    (kept,) = _samples(out)
    assert kept.id == "a_x0024"  # flush with the strip's end, reaching 6 px into the band
    report = _report(out)
    assert report["dropped_tiles"] == [
        {"file": str(src / "good" / "b.png"), "id": "b_x0024", "valid_fraction": 0.375}
    ]
    assert "dropped tile b_x0024: 38% of it is valid" in result.output
    stricter = _run([*args, "--min-valid", "0.7"], tmp_path / "strict")
    assert stricter.exit_code == 1 and not (tmp_path / "strict").exists()
    assert "nothing imported as masks" in stricter.output and "(2 tiles dropped)" in stricter.output


def test_tiles_within_a_window_by_hand() -> None:
    from synth.tiles import tiles_within

    window = Tile(10, 0, 70, 16)
    assert [t.x0 for t in tiles_within(window, 70, 16, 16, 16)] == [10, 25, 39, 54]
    assert [(t.x0, t.x1) for t in tiles_within(Tile(60, 0, 70, 16), 70, 16, 16, 16)] == [(54, 70)]
    assert [(t.x0, t.x1) for t in tiles_within(Tile(0, 0, 5, 16), 70, 16, 16, 16)] == [(0, 16)]
    assert [(t.x0, t.x1, t.y1) for t in tiles_within(Tile(0, 0, 8, 4), 8, 4, 16, 16)] == [(0, 8, 4)]


# ----------------------------------------------------------------- the masks format's odd files


def test_mask1_and_mask2_are_joined(tmp_path: Path) -> None:
    src = tmp_path / "aitex"
    _png(src / "Defect_images" / "0044_019_04.png", _strip(0))
    _png(src / "Mask_images" / "0044_019_04_mask1.png", _defect_mask(box=(5, 2, 9, 5)))
    _png(src / "Mask_images" / "0044_019_04_mask2.png", _defect_mask(box=(50, 10, 60, 14)))
    out = tmp_path / "out"
    assert _run(["masks", str(src), *AITEX_OPTIONS, *ALL_TRAIN], out).exit_code == 0
    (sample,) = _samples(out)
    expected = (_defect_mask(box=(5, 2, 9, 5)) >= 128) | (_defect_mask(box=(50, 10, 60, 14)) >= 128)
    np.testing.assert_array_equal(sample.mask() > 0, expected)
    assert [i["class_name"] for i in sample.meta["instances"]] == ["fuzzyball", "fuzzyball"]
    assert any(
        "its 2 masks 0044_019_04_mask1.png, 0044_019_04_mask2.png are joined" in n
        for n in _report(out)["notes"]
    )


def test_an_image_without_a_mask_is_skipped_never_good_and_an_empty_mask_too(tmp_path: Path) -> None:
    src = _aitex_like(tmp_path / "aitex", n_good=2, n_defect=2)
    _png(src / "Defect_images" / "0100_025_08.png", _strip(7))  # no mask
    _png(src / "Defect_images" / "0101_022_03.png", _strip(8))
    _png(src / "Mask_images" / "0101_022_03_mask.png", np.zeros((16, 70), np.uint8))  # empty
    out = tmp_path / "out"
    result = _run(["masks", str(src), *AITEX_OPTIONS, "--tile", "16"], out)
    assert result.exit_code == 0, result.output
    assert not any(s.meta["spec"]["source_id"] in ("0100_025_08", "0101_022_03") for s in _samples(out))
    skipped = {Path(s["file"]).name: s["reason"] for s in _report(out)["skipped"]}
    assert (
        "no mask found" in skipped["0100_025_08.png"]
        and "never imported as good" in skipped["0100_025_08.png"]
    )
    assert (
        "0101_022_03_mask.png: no labelled pixel, but its class is cut_selvage" in skipped["0101_022_03.png"]
    )
    assert "skipped " + str(src / "Defect_images" / "0100_025_08.png") in result.output


def test_aitex_codes_become_named_classes_and_grey_alpha_is_read(tmp_path: Path) -> None:
    src = _aitex_like(tmp_path / "aitex", n_good=2, n_defect=4)
    _png(src / "Defect_images" / "0200_041_00.png", _strip(9))  # a code the table does not know
    _png(src / "Mask_images" / "0200_041_00_mask.png", _defect_mask())
    out = tmp_path / "out"
    assert _run(["masks", str(src), *AITEX_OPTIONS, *ALL_TRAIN], out).exit_code == 0
    assert [c.name for c in Dataset(out).classes] == ["041", "broken_end", "fuzzyball"]
    notes = _report(out)["notes"]
    assert "class '002' of 2 image(s) is named 'broken_end' by --class-map" in notes
    assert not any("'041'" in n for n in notes)
    (alpha,) = [s for s in _samples(out) if s.id == "0001_002_00"]  # stored LA
    np.testing.assert_array_equal(alpha.image()[..., 0], _strip(0))


def _leather_like(root: Path) -> Path:
    """images/<class>_<n>.png RGBA with masks/<same name> soft-edged RGBA masks; one mask at twice
    the size (a safe repair), one of another aspect ratio (not repairable)."""
    rng = np.random.default_rng(5)
    for name in ("cut_1", "hole_2", "wringle_3", "wringle_4", "line_5"):
        rgba = np.dstack(
            [rng.integers(60, 160, (32, 32, 3), dtype=np.uint8), np.full((32, 32), 255, np.uint8)]
        )
        _png(root / "images" / f"{name}.png", rgba, "RGBA")
        soft = np.zeros((32, 32), np.uint8)
        soft[8:20, 8:20] = 140
        soft[10:18, 10:18] = 255
        soft[24:28, 24:28] = 60  # a faint stroke: background by the rule, and a note
        mask = np.dstack([soft, soft, soft, np.full_like(soft, 255)])
        if name == "wringle_4":
            mask = np.kron(mask, np.ones((2, 2, 1), np.uint8))  # 64 x 64: the image scaled by 2
        if name == "line_5":
            mask = mask[:30]  # 32 x 30: another aspect ratio
        _png(root / "masks" / f"{name}.png", mask, "RGBA")
    return root


def test_leather_like_import_repairs_or_skips_the_odd_files_and_lists_each(tmp_path: Path) -> None:
    src = _leather_like(tmp_path / "leather")
    out = tmp_path / "out"
    result = _run(["masks", str(src), "--class-map", "wringle=wrinkle", *ALL_TRAIN], out)
    assert result.exit_code == 0, result.output
    samples = {s.id: s for s in _samples(out)}
    assert sorted(samples) == ["cut_1", "hole_2", "wringle_3", "wringle_4"]
    assert [c.name for c in Dataset(out).classes] == ["cut", "hole", "line", "wrinkle"]  # line: by its name
    assert samples["wringle_3"].meta["instances"][0]["class_name"] == "wrinkle"
    expected = np.zeros((32, 32), bool)
    expected[8:20, 8:20] = True  # 140 and 255 are defect; 60 is not
    np.testing.assert_array_equal(samples["cut_1"].mask() > 0, expected)
    np.testing.assert_array_equal(samples["wringle_4"].mask() > 0, expected)  # area-averaged to 32 x 32
    report = _report(out)
    (skip,) = report["skipped"]
    assert skip["file"] == str(src / "images" / "line_5.png")
    assert "is 32x30 px but its image" in skip["reason"] and "another aspect ratio" in skip["reason"]
    assert f"{src / 'masks' / 'wringle_4.png'}: 64x64 px, resized to its image's 32x32 px" in " ".join(
        report["notes"]
    )
    assert "class 'wringle' of 2 image(s) is named 'wrinkle' by --class-map" in report["notes"]
    assert sum("a faint" in n or "below 128" in n for n in report["notes"]) == 4  # one per imported mask
    assert samples["cut_1"].image().shape == (32, 32, 3)  # RGBA stored as RGB


def test_a_name_outside_the_class_pattern_is_skipped(tmp_path: Path) -> None:
    src = _leather_like(tmp_path / "leather")
    _png(src / "images" / "42.png", np.zeros((32, 32), np.uint8))
    _png(src / "masks" / "42.png", np.full((32, 32), 255, np.uint8))
    out = tmp_path / "out"
    assert _run(["masks", str(src), *ALL_TRAIN], out).exit_code == 0
    skipped = {Path(s["file"]).name: s["reason"] for s in _report(out)["skipped"]}
    assert "does not match --class-pattern '^([A-Za-z]+)'" in skipped["42.png"]
    assert "wringle" in [c.name for c in Dataset(out).classes]  # no --class-map: kept as named


def test_a_rerun_keeps_the_tiles_and_other_options_are_refused(tmp_path: Path) -> None:
    src = _aitex_like(tmp_path / "aitex", n_good=2, n_defect=2)
    out = tmp_path / "out"
    args = ["masks", str(src), *AITEX_OPTIONS, "--tile", "16"]
    assert _run(args, out).exit_code == 0
    first = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    report = _report(out)
    again = _run(args, out)
    assert (
        again.exit_code == 0 and {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")} == first
    )
    assert _report(out) == report  # the same notes, skips and counts
    other = _run([*args[:-1], "32"], out)
    assert other.exit_code == 1 and "cutting.tile 16 -> 32" in other.output


# ----------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tile", "0"], "--tile 0: expected a tile size of at least 1 px"),
        (
            ["--tile", "16", "--stride", "20"],
            "--stride 20: expected 1 to --tile 16: tiles would leave gaps of 4 px",
        ),
        (["--tile", "16", "--stride", "0"], "--stride 0: expected 1 to --tile 16"),
        (["--stride", "8"], "--stride 8 needs --tile"),
        (
            ["--valid-region", "white-band"],
            "--valid-region 'white-band': unknown rule, expected one of saturated-columns",
        ),
        (["--saturation", "300"], "--saturation 300: expected an 8-bit value"),
        (["--tile", "16", "--min-valid", "1.5"], "--min-valid 1.5: expected a fraction"),
        (["--class-pattern", "[a-z"], "--class-pattern '[a-z' is not a regular expression"),
        (["--class-pattern", "^[a-z]+"], "--class-pattern '^[a-z]+' has no group"),
        (["--class-map", "wringle"], "--class-map 'wringle': expected a table (aitex) or a pair old=new"),
    ],
)
def test_bad_options_name_the_option_and_write_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    src = _leather_like(tmp_path / "leather")
    out = tmp_path / "out"
    result = _run(["masks", str(src), *options], out)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_source_without_one_mask_folder_is_refused(tmp_path: Path) -> None:
    src = _leather_like(tmp_path / "leather")
    (src / "masks_old").mkdir()
    result = _run(["masks", str(src)], tmp_path / "out")
    assert result.exit_code == 1
    assert (
        "expected image folders and one mask folder" in result.output
        and "found 2 mask folder(s)" in result.output
    )


# ----------------------------------------------------------------- the real sets


@pytest.mark.real
def test_real_aitex_and_leather_scan_and_the_band_of_one_strip() -> None:
    aitex, leather = REAL / "aitex", REAL / "leather"
    if not (aitex.is_dir() and leather.is_dir()):
        pytest.skip(f"real data not found at {REAL}")
    source = imp.scan("masks", aitex, class_pattern=r"^\d+_(\d+)_", class_map=["aitex"])
    assert sum(i.stratum == "good" for i in source.items) == 35 and len(source.items) == 89
    assert [Path(s["file"]).name for s in source.skipped] == ["0100_025_08.png"]
    assert set(source.class_names) <= set(CLASS_MAPS["aitex"].values())
    strip = next(i for i in source.items if i.id == "0001_002_00")
    image = read_image(strip.image)
    assert valid_window(image, "saturated-columns") == Tile(1103, 0, 4096, 256)
    source = imp.scan("masks", leather, class_map=["wringle=wrinkle"])
    assert source.class_names == ["cut", "hole", "line", "wrinkle"] and len(source.items) == 106
