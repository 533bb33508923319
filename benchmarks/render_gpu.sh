#!/usr/bin/env bash
# Cycles on one GPU and on the CPU in one run (benchmarks/render_speed.py, scenes/leather.yaml):
# seconds per image at 256² and 512², 16 and 64 samples, each with the scene's OpenImageDenoise
# ("denoised"), without it ("raw") and with adaptive sampling at threshold 0.01 ("adaptive"),
# the three interleaved image by image. Sized for under 10 minutes on one GPU: the GPU renders
# GPU_IMAGES images a setting, then the CPU (all its cores) CPU_IMAGES, cut at CPU_BUDGET_S
# seconds (the figures of the settings finished by then are printed). A machine without a GPU of
# that kind stops at once with one line naming --device.
#
#   bash benchmarks/render_gpu.sh          # DEVICE=cuda GPU_IMAGES=5 CPU_IMAGES=2 OUT=runs/render_gpu
#   DEVICE=optix bash benchmarks/render_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
GPU_IMAGES=${GPU_IMAGES:-5}
CPU_IMAGES=${CPU_IMAGES:-2}
GPU_SETTINGS=${GPU_SETTINGS:-256x16,256x64,512x16,512x64}
CPU_SETTINGS=${CPU_SETTINGS:-256x16,256x64,512x16,512x64}
GPU_BUDGET_S=${GPU_BUDGET_S:-300}
CPU_BUDGET_S=${CPU_BUDGET_S:-240}
VARIANTS=denoised,raw,adaptive
OUT=${OUT:-runs/render_gpu}
mkdir -p "$OUT"
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
# 124: cut at its budget, with the figures printed so far
timeout "$GPU_BUDGET_S" .venv/bin/python benchmarks/render_speed.py --device "$DEVICE" \
  --images "$GPU_IMAGES" --settings "$GPU_SETTINGS" --variants "$VARIANTS" | tee "$OUT/gpu.jsonl" || [ $? -eq 124 ]
timeout "$CPU_BUDGET_S" .venv/bin/python benchmarks/render_speed.py --device cpu \
  --images "$CPU_IMAGES" --settings "$CPU_SETTINGS" --variants "$VARIANTS" | tee "$OUT/cpu.jsonl" || [ $? -eq 124 ]
echo "{\"figure\": \"render_gpu_seconds\", \"device\": \"$DEVICE\", \"value\": $(( $(date +%s) - start ))}"
