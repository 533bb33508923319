"""Import ultralytics so that it never touches the network.

Left to itself ultralytics probes DNS at import, downloads Arial.ttf when it checks a dataset,
downloads weights for its AMP check, checks PyPI for updates and posts analytics. All of these
are gated on settings read at import time, so they must be fixed before the first import. Its
`TorchVision` backbone module asks torchvision for named ImageNet weights, which come from the
run's own $TORCH_HOME (train/backbones.py), never from a download or the user's cache.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from synth.errors import ModelError
from train.backbones import offline_torch_home

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
INTEGRATIONS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def import_ultralytics(run_dir: Path) -> ModuleType:
    """Import ultralytics offline, with settings, fonts and the torch home under `run_dir`.

    Ultralytics reads YOLO_CONFIG_DIR once per process, so a later run in the same process keeps
    the first run's config directory; the fonts are put wherever that directory is. The torch
    home is each run's own `ultralytics-config/torch`.
    """
    os.environ["YOLO_OFFLINE"] = "1"  # is_online() -> False: no DNS probe, no update check
    offline_torch_home(Path(run_dir).resolve() / "ultralytics-config" / "torch")
    os.environ.pop("ULTRALYTICS_API_KEY", None)  # the Platform callback streams to the cloud
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_CONFIG_DIR"] = str(Path(run_dir).resolve() / "ultralytics-config")
    import matplotlib
    import ultralytics
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in FONT_NAMES:  # check_font() downloads these when they are missing
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists():
            shutil.copyfile(font, target)
    if any(SETTINGS[key] for key in INTEGRATIONS):
        SETTINGS.update({key: False for key in INTEGRATIONS})
    # select_device() sets torch's threads for the whole process to its NUM_THREADS, cpu_count - 1
    # (1 on 2 cores): every later torch step in the process (the PatchCore cells after YOLO
    # cells of an experiment) would compute with another thread count, so with other float sums.
    # Keep the count the process has (OMP_NUM_THREADS); select_device() never changes it then.
    import torch
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = torch.get_num_threads()
    return ultralytics


def load_yolo(model: str | Path) -> Any:
    """A YOLO model from a model YAML or a local weights file (after `import_ultralytics`).

    Ultralytics reports a file it cannot load with whatever exception its loader hit
    (TypeError, RuntimeError, FileNotFoundError ...), so all of them become one ModelError
    that names the file.
    """
    from ultralytics import YOLO

    try:
        return YOLO(str(model))
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{model}: cannot be loaded as a YOLO model ({reason})") from None
