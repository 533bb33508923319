#!/usr/bin/env bash
# The test command (README, .ci/run): set up .venv if needed, lint, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 OMP_NUM_THREADS=2
.venv/bin/ruff check synth train evaluate tests benchmarks
# pytest exits 5 when it collected no test: that is a failure here too.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
