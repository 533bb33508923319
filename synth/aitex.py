"""The AITEX Fabric Image Database's defect codes: the one table the scene and the importer share.

AITEX file names are `nnnn_ddd_ff.png` (image number, defect code, fabric code; `000` = no
defect). The codes and names are those of Silvestre-Blanes, Albero-Albero, Miralles,
Pérez-Llorens and Moreno, "A Public Fabric Database for Defect Detection Methods and Results",
AUTEX Research Journal 19(4), 2019. Class names are the paper's names in snake_case, so a
rendered `scenes/textile_aitex.yaml` dataset and an imported AITEX dataset name a defect alike.
"""

from __future__ import annotations

import re

from synth.errors import DataError

NO_DEFECT = "000"

DEFECT_CLASSES: dict[str, str] = {
    "002": "broken_end",  # a missing warp thread: a line along the warp (image y)
    "006": "broken_yarn",
    "010": "broken_pick",  # a missing weft thread: a line along the weft (image x)
    "016": "weft_curling",
    "019": "fuzzyball",
    "022": "cut_selvage",
    "023": "crease",
    "025": "warp_ball",
    "027": "knots",
    "029": "contamination",
    "030": "nep",
    "036": "weft_crack",
}

_NAME = re.compile(r"^(\d{4})_(\d{3})_(\d{2})$")


def parse_name(stem: str) -> tuple[str, str, str]:
    """(image number, defect code, fabric code) of an AITEX file stem such as `0001_002_00`
    (a `_mask`, `_mask1`, ... suffix is ignored); DataError for any other name."""
    match = _NAME.match(re.sub(r"_mask\d*$", "", stem))
    if match is None:
        raise DataError(f"{stem}: not an AITEX name (expected nnnn_ddd_ff, e.g. 0001_002_00)")
    return match.group(1), match.group(2), match.group(3)


def defect_class(stem: str) -> str | None:
    """The class name of an AITEX file stem, None for a defect-free image (code 000);
    DataError naming the file for a code outside the AITEX list."""
    _, code, _ = parse_name(stem)
    if code == NO_DEFECT:
        return None
    if code not in DEFECT_CLASSES:
        raise DataError(
            f"{stem}: unknown AITEX defect code {code} (known: {', '.join(sorted(DEFECT_CLASSES))})"
        )
    return DEFECT_CLASSES[code]
