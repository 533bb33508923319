#!/usr/bin/env bash
# The main job on a small default, from a fresh clone: set up .venv, render a small
# Blender dataset of the magnetic-tile scene, pretrain a Sequential PatchCore coreset on
# its good images, and evaluate it. Everything lands in runs/demo/ (resumes if re-run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1
out=${1:-runs/demo}
.venv/bin/synth render scenes/metal_tile.yaml --out "$out/data" --n 24
.venv/bin/synth verify "$out/data"
[ -f "$out/coreset.safetensors" ] ||
  .venv/bin/train pretrain patchcore --data "$out/data" --out "$out/coreset.safetensors" \
    --imgsz 128 --coreset-size 512 --epochs 2
.venv/bin/evaluate anomaly --coreset "$out/coreset.safetensors" --data "$out/data" --out "$out/eval"
echo "demo finished: dataset $out/data, coreset $out/coreset.safetensors, report $out/eval"
