"""Formats the project both writes (synth.writers) and imports (evaluate.formats) read back what
was written: the same annotations."""

from pathlib import Path

import numpy as np
import pytest

from evaluate import importers
from synth.annotations import Annotations, ClassInfo
from synth.writers import DatasetWriter

CLASSES = (ClassInfo(1, "scratch", "defect"), ClassInfo(2, "stain", "impurity"))


def _written(root: Path) -> Annotations:
    instance_map = np.zeros((24, 32), np.uint16)
    instance_map[2:9, 3:12] = 1
    instance_map[12:20, 16:30] = 2
    instance_map[14:16, 4:6] = 3
    annotations = Annotations.from_instance_map(instance_map, {1: 1, 2: 2, 3: 1}, CLASSES)
    with DatasetWriter(root, CLASSES, source={"test": "round trip"}) as writer:
        writer.write("train", "a", np.full((24, 32, 3), 90, np.uint8), annotations)
        writer.finalize()
    return annotations


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_written_labels_import_as_the_same_annotations(tmp_path: Path, fmt: str) -> None:
    written = _written(tmp_path / "ds")
    if fmt == "yolo":
        source = importers.scan("yolo", tmp_path / "ds", names=[c.name for c in CLASSES])
    else:
        source = importers.scan("coco", tmp_path / "ds" / "coco" / "train.json", images=tmp_path / "ds")
    [item] = source.items
    read, notes = item.read_labels(written.size, CLASSES)
    assert notes == []
    assert (read.instance_map == written.instance_map).all()
    assert [i.class_id for i in read.instances] == [i.class_id for i in written.instances]
