#!/usr/bin/env bash
# Wall time of two raster workloads, at git revision REV and at the working tree, in one run:
# the renders of experiments/kolektorsdd_detectors.yaml (scenes/commutator.yaml, raster; N of its
# 120 images, so the slow revision finishes) and a `synth calibrate` study of a grinding scene
# against real good images (TRIALS trials of 16 images at 128 px; seconds per trial from its
# Optuna storage).
#
#   bash benchmarks/raster_workloads.sh REV REAL_GOOD_IMAGES [N] [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1 real=$(realpath "$2") n=${3:-12} trials=${4:-3}
here=$(pwd) python=$(pwd)/.venv/bin/python
work=$(mktemp -d)
mkdir "$work/before"
git archive "$rev" | tar -x -C "$work/before"
export OMP_NUM_THREADS=1
for side in before now; do
  tree=$([ $side = before ] && echo "$work/before" || echo "$here")
  cli="import sys; sys.path.insert(0, '$tree'); from synth.cli import main; sys.exit(main())"
  start=$(date +%s.%N)
  (cd "$tree" && "$python" -c "$cli" render scenes/commutator.yaml --renderer raster --n "$n" \
    --out "$work/$side-renders" --quiet)
  end=$(date +%s.%N)
  echo "{\"side\": \"$side\", \"figure\": \"commutator raster renders\", \"images\": $n," \
    "\"wall_s\": $(echo "$end - $start" | bc), \"s_per_image\": $(echo "($end - $start) / $n" | bc -l | cut -c1-6)}"
  (cd "$tree" && "$python" -c "$cli" calibrate scenes/metal_tile_ground.yaml --real "$real" \
    --out "$work/$side-fit.yaml" --report "$work/$side-calibration" --trials "$trials" --quiet)
  echo "{\"side\": \"$side\", \"figure\": \"calibration of metal_tile_ground\"}"
  "$python" benchmarks/calibration_trials.py "$work/$side-calibration/study.db"
done
rm -rf "$work"
