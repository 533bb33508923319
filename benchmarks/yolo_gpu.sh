#!/usr/bin/env bash
# The YOLO domain-gap cells on one GPU (issue 18's GPU recipe): the ImageNet MobileNetV2 YOLO at
# 640 px for 100 epochs (50 to fine-tune), real_only and synthetic_finetuned at 10 and all real
# defect images, and synthetic_only, against the real magnetic tiles
# (experiments/metal_tile_yolo_gpu.yaml). Sized for under 10 minutes on one GPU for one seed;
# SEEDS="0 1 2" runs the three seeds (the real import and the renders are made once; cells are
# keyed by their seed), and the table gives mean (min-max) per row.
#
#   bash benchmarks/yolo_gpu.sh                     # OUT=runs/yolo_gpu SEEDS=0 DEVICE=0
#   SEEDS="0 1 2" REAL=/data/magnetic_tile bash benchmarks/yolo_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/yolo_gpu}
SEEDS=${SEEDS:-0}
DEVICE=${DEVICE:-0}
REAL=${REAL:-../shared/real/magnetic_tile}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} HF_HUB_OFFLINE=1 YOLO_OFFLINE=1
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
# the device goes into the cells' train arguments (and so into their keys); the file is checked
# with `device: cpu`, which a machine without a GPU can load
sed -e "s/device: cpu}/device: $DEVICE}/" experiments/metal_tile_yolo_gpu.yaml > "$OUT/experiment.yaml"
start=$(date +%s)
# the copy sits in $OUT, so the real data and the scene are given here
.venv/bin/evaluate domain-gap "$OUT/experiment.yaml" --out "$OUT/run" --real "$REAL" \
  --scene scenes/metal_tile_ground.yaml $(printf -- '--seed %s ' $SEEDS)
echo "{\"figure\": \"yolo_gpu_seconds\", \"seeds\": \"$SEEDS\", \"value\": $(( $(date +%s) - start ))}"
