"""Importers of real datasets into the canonical layout (docs/CONTRACTS.md): `evaluate import`.

Every format is reduced to one thing, a `Source`: its class names, a list of `SourceItem`s
(an image file plus a function that reads its labels as `Annotations`) and the files passed
over while scanning, and is then written by one function through `synth.writers.DatasetWriter`
(`evaluate.formats.canonical`). Each format is read by its own module of `evaluate.formats`.
The layout each format expects is described in the help of `evaluate import` (`import_data`).

Images may be grey, grey+alpha, RGB(A), 8 or 16 bit: they are stored as 8-bit RGB (alpha
dropped, 16 bit scaled by 255/65535). Source splits are not kept: every importer re-splits its
images into train/val/test with a seed, stratified by class and optionally by a group taken
from the file name (such as magnetic_tile's `exp<k>` capture condition).

No label is changed behind the user's back, because a wrong label is worse than a missing one:
- a problem of the whole source (a missing folder, a class id or category that is not
  declared, a mask of another size than its image) stops the import before anything is
  written, with a message naming the file and what was expected;
- a problem of one sample (an unreadable image, a malformed or out-of-range label line, a shape
  this importer cannot draw, a defect class image with empty labels) skips that sample; each
  skip is listed with its reason on stderr and in `import_report.json`;
- a rule that decides labels is applied as documented and every file it affects is listed as a
  note: mask pixels are defect from half the value range up (`read_binary_mask`), and objects
  that cover no pixel of their own are not in the labels.

The `masks` format (image folders beside one mask folder, the class in the file name: AITEX,
the leather set) treats a mask of another size as a problem of its sample: repaired when it is
the image scaled by one factor, else skipped. Any format's images may be cut into samples
(`Cutting`, `cut_item`): cropped to a valid region found by a stated rule, then tiled; every
crop, dropped tile and label pixel left out is listed, and all tiles of one image share a split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from evaluate.formats.canonical import import_dataset
from evaluate.formats.coco import scan_coco
from evaluate.formats.cutting import VALID_REGION_RULES, Cutting
from evaluate.formats.folders import scan_class_folders
from evaluate.formats.labelme import scan_labelme
from evaluate.formats.masks import DEFAULT_CLASS_PATTERN, scan_masks
from evaluate.formats.mvtec import scan_mvtec
from evaluate.formats.report import echo_report
from evaluate.formats.source import ImportFailure, Source
from evaluate.formats.yolo import scan_yolo
from synth.errors import ConfigError
from synth.outputs import OutputPath
from train.options import Finite

__all__ = ["DEFAULT_CLASS_PATTERN", "FORMATS", "Cutting", "ImportFailure", "Source", "import_dataset", "scan"]

FORMATS = ("mvtec", "folders", "masks", "yolo", "coco", "labelme")


def scan(
    fmt: str,
    src: Path,
    names: Sequence[str] | None = None,
    images: Path | None = None,
    class_pattern: str = DEFAULT_CLASS_PATTERN,
    class_map: Sequence[str] = (),
) -> Source:
    """Scan a source of the given format (one of FORMATS); a source without any image to
    import is an error, naming why its files were passed over."""
    if not src.exists():
        raise ImportFailure(f"{src}: no such file or folder")
    scanners: dict[str, Callable[[], Source]] = {
        "mvtec": lambda: scan_mvtec(src),
        "folders": lambda: scan_class_folders(src),
        "masks": lambda: scan_masks(src, class_pattern, class_map),
        "yolo": lambda: scan_yolo(src, names),
        "coco": lambda: scan_coco(src, images),
        "labelme": lambda: scan_labelme(src),
    }
    if fmt not in scanners:
        raise ImportFailure(f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")
    source = scanners[fmt]()
    if not source.items:
        why = "; ".join(s["reason"] for s in source.skipped[:3]) + (
            "; ..." if len(source.skipped) > 3 else ""
        )
        more = f" ({len(source.skipped)} files passed over: {why})" if why else ""
        raise ImportFailure(f"{src}: found no image to import as {fmt}{more}")
    return source


def _check_out(src: Path, out: Path) -> None:
    """An output inside a source folder would be read back as source data by the next import."""
    if src.is_dir() and (out.resolve() == src.resolve() or src.resolve() in out.resolve().parents):
        raise ConfigError(f"--out {out} is inside the source folder {src}; write the dataset elsewhere")


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=OutputPath(folder=True), help="Dataset folder to write.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/val/test split.")
@click.option(
    "--split",
    "fractions",
    nargs=3,
    type=Finite(),
    default=(0.6, 0.2, 0.2),
    show_default=True,
    help="Fractions of train, val and test.",
)
@click.option(
    "--group-pattern",
    default=None,
    help=r"Regex whose match in the file name is a split group, e.g. 'exp\d+'.",
)
@click.option(
    "--impurity",
    "impurities",
    multiple=True,
    help="A class that is an impurity, not a defect (repeatable).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a dataset in --out that was made with other options."
)
@click.option("--names", default=None, help="YOLO: comma-separated class names (else the data yaml).")
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO: image folder (else the JSON's folder).",
)
@click.option(
    "--class-pattern",
    default=DEFAULT_CLASS_PATTERN,
    show_default=True,
    help=r"masks: regex whose first group in an image's name is its class, e.g. '^\d+_(\d+)_' for AITEX.",
)
@click.option(
    "--class-map",
    "class_map",
    multiple=True,
    help="masks: rename classes: a table (aitex: its defect codes) or old=new (repeatable).",
)
@click.option("--tile", type=int, default=None, help="Cut each image into tiles of this many px.")
@click.option("--stride", type=int, default=None, help="Step between tiles in px (default: --tile).")
@click.option(
    "--valid-region",
    default=None,
    help=f"Crop each image to its surface by a rule: {', '.join(VALID_REGION_RULES)}.",
)
@click.option(
    "--saturation",
    type=int,
    default=Cutting.saturation,
    show_default=True,
    help="saturated-columns: the median at and above which a column is not surface.",
)
@click.option(
    "--min-valid",
    type=Finite(),
    default=Cutting.min_valid,
    show_default=True,
    help="Drop a tile with a smaller share of its pixels inside the valid region.",
)
def import_data(
    fmt: str,
    src: Path,
    out: Path,
    seed: int,
    fractions: tuple[float, float, float],
    group_pattern: str | None,
    impurities: tuple[str, ...],
    overwrite: bool,
    names: str | None,
    images: Path | None,
    class_pattern: str,
    class_map: tuple[str, ...],
    tile: int | None,
    stride: int | None,
    valid_region: str | None,
    saturation: int,
    min_valid: float,
) -> None:
    """Import real data (FORMAT: mvtec, folders, masks, yolo, coco, labelme) into the canonical layout.

    Images are re-split into train/val/test (--split, --seed), stratified by class and by
    --group-pattern; the source's own split is not kept.

    mvtec: SRC is one MVTec AD category: train/good/*, test/good/*, test/<class>/<stem>.png
    and, for each defective image, ground_truth/<class>/<stem>_mask.png.

    folders: SRC holds one folder per class, with images and their masks anywhere inside it; a
    mask is <stem>_mask.* or <stem>_gt.*, or the .png beside a non-png image of the same stem
    (magnetic tile: MT_Crack/Imgs/x.jpg with x.png). Folders named good, free, ok, normal,
    defect_free or no_defect, also after a prefix (MT_Free), hold defect-free images, whose
    masks must be empty; a prefix shared by all folders (MT_) is dropped from class names.

    masks: SRC holds image folders and one mask folder (its name holds 'mask') side by side.
    The masks of <image folder>/<path>/<stem>.* are <mask folder>/<path>/<stem>.*, <stem>_mask.*
    or <stem>_mask<k>.* (several: their union). Image folders named good, no_defect, ... (also
    with _images: NoDefect_images) hold defect-free images; the class of any other image is
    the first group of --class-pattern in its name, renamed by --class-map. An image of a
    defect folder without a mask is skipped. A mask of another size that is the image scaled by
    one factor is resized to it (a note); any other size skips the sample. AITEX: --class-pattern
    '^\\d+_(\\d+)_' --class-map aitex; the leather set: --class-map wringle=wrinkle.

    yolo: SRC holds images/<path>.<ext> and labels/<path>.txt: boxes "class cx cy w h" or
    polygons "class x1 y1 x2 y2 ...", normalised to [0, 1]. Class names come from --names,
    else from 'names' in a data yaml in SRC, else class0, class1, ... An image without a label
    file is good. A class id outside the names stops the import; a line with coordinates that
    are not finite or not in [0, 1] skips its image (nothing is clipped).

    coco: SRC is a COCO instances JSON (polygons, RLE, or the bbox when there is no
    segmentation), its images under --images, else the JSON's folder. An annotation on an
    unknown image id or category id stops the import.

    labelme: SRC is a folder of LabelMe JSON files, each naming its image (imagePath) or
    embedding it (imageData), with polygon, rectangle and circle shapes in pixels. A file with
    another shape type, malformed JSON or a shape without a label or points is skipped.

    Cutting (any format): --valid-region saturated-columns crops the columns, from the left and
    right edges inwards, whose median is at least --saturation in every channel (a white band
    beside the surface); --tile cuts each image, or its valid region, into tiles at most
    --stride apart, the last flush with the border; a tile of which less than --min-valid lies
    in the valid region (where the region is narrower than a tile) is dropped and listed. A tile
    is a sample <image id>_x<x0> (and _y<y0> below the first row); its meta spec records its
    image and offset. All tiles of an image go to one split.

    Masks (mvtec, folders): a pixel is defect when its value is at least half the range (128
    of 255, 32768 of 65535, brightest channel), so anti-aliased edges keep the core of their
    region; a region whose values all lie below that is background and listed as a note. The
    masks format reads its masks by the same rule.

    No label is changed silently: a problem of the whole source stops the import before
    anything is written, a problem of one file skips it, and both name the file. Skips and
    notes are printed and listed in OUT/import_report.json.
    """
    _check_out(src, out)
    cutting = Cutting(tile, stride, valid_region, saturation, min_valid)
    listed = [n.strip() for n in names.split(",")] if names else None
    source = scan(fmt, src, listed, images, class_pattern, class_map)
    report = import_dataset(source, out, fractions, seed, group_pattern, impurities, overwrite, cutting)
    echo_report(report, out)
