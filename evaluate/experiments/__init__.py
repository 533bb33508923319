"""The domain-gap experiment: `evaluate domain-gap EXPERIMENT.yaml`.

A matrix of training scenarios (real only, synthetic variants, synthetic pretrained + real
fine-tuned, melded coresets) crossed with a real-data budget (k real good images), every
cell evaluated with the same threshold rule on the same real validation and test splits.
The tables and the report hold every cached cell of the file's matrix, whichever run made it
(a run of one seed, budget or kind keeps the others' rows), each scenario and budget as mean
(min–max) over its seeds, and the report opens with a verdict line per synthetic scenario
(verdict.json) and the counts of the real data.

Everything expensive is cached under the output folder and keyed by what produced it: the
imported real data (its `real:` settings), each synthetic dataset (scene, overrides, n,
renderer), each coreset (its data and PatchCore settings), and each finished cell's result JSON
(written atomically). Every cached thing is named by `data.key(recipe)`, where the recipe
lists everything it depends on, its inputs' recipes included, so a rerun
only does what is missing and an edited experiment recomputes exactly the cells it touches.

With `synthetic_test: true` every cell is also scored on the test split of the experiment's own
synthetic data (base settings, impurities included), thresholded on its synthetic val split: the
one place false alarms on impurities can be measured when the real data has none.

Detector cells (optional `yolo:` and `maskrcnn:` sections) train a single-class `defect`
detector per scenario, budget and seed, where k counts real images with labelled defects, and
are scored on the same real test split with evaluate.detector's box metrics (and mask metrics
for models with masks); each kind gets its own table beside PatchCore's. Segment cells (a
`segment:` section) train supervised segmenters.

Modules, in the order a run uses them: `config` (schema and checks at load), `data` (real
import, renders, cache keys), `patchcore_cells`, `detector_cells` (with `yolo_cells` and
`maskrcnn_cells`), `segment_cells`, `cells` (the matrix, one cell computed), `on_ray`, `tables`
(with `verdict`: did synthetic data help, by the seeds' ranges), `runner`, `cli`.
"""

from evaluate.experiments.cli import domain_gap
from evaluate.experiments.config import ExperimentConfig, ExperimentError, load_experiment
from evaluate.experiments.runner import Results, run

__all__ = ["ExperimentConfig", "ExperimentError", "Results", "domain_gap", "load_experiment", "run"]
