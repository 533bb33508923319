"""`evaluate`: import real data, measure anomaly models and detectors, run domain-gap
experiments, and predict with tiling. Thin: the work lives in the modules it registers."""

from __future__ import annotations

import os

import click

from synth.errors import CommandGroup

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


@click.group(cls=CommandGroup)
def main() -> None:
    """Measure models on synthetic and real data."""


def _register() -> None:
    from evaluate.anomaly import anomaly
    from evaluate.detector import detector
    from evaluate.experiments import domain_gap
    from evaluate.gap import gap
    from evaluate.hybrid import hybrid
    from evaluate.importers import import_data
    from evaluate.predict import predict
    from evaluate.segment import segment

    for command in (import_data, anomaly, detector, domain_gap, gap, predict, segment, hybrid):
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
