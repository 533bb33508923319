"""Seconds per trial and wall time of a `synth calibrate` study, read from its Optuna storage.

    python benchmarks/calibration_trials.py runs/calib/coverage/report/study.db

Prints one machine-readable line per figure. The per-trial time is what the objective measured
(render + features + score); the wall time runs from the first trial's start to the last one's
end, so it includes the sampler and storage overhead between trials.
"""

from __future__ import annotations

import sys

import numpy as np
import optuna

from synth.calibrate import STUDY_NAME, completed


def main(path: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    trials = completed(study)
    seconds = np.array([t.user_attrs["seconds"] for t in trials])
    wall = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    identity = study.user_attrs["identity"]
    settings = identity["settings"]
    print(
        f"study={path} trials={len(trials)} images={settings['images']} resolution={settings['resolution']}"
    )
    print(
        f"objective={settings['objective']} parameters={len(identity['space'])} "
        f"real_images={identity['real_images']}"
    )
    print(
        f"seconds_per_trial_median={np.median(seconds):.2f} mean={seconds.mean():.2f} max={seconds.max():.2f}"
    )
    print(f"trials_wall_s={wall:.0f} overhead_share={(wall - seconds.sum()) / wall:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
