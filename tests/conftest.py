"""Shared fixtures: small scene configs and a network guard for the whole suite."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

# The same examples on every run and machine: a CI failure reproduces locally, and a pass is not luck.
# Explore with fresh examples by running pytest with --hypothesis-profile=explore.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("deterministic")

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"

TINY_SCENE = {
    "name": "tiny",
    "seed": 3,
    "surface": {
        "family": "metal",
        "color_low": [0.2, 0.2, 0.2],
        "color_high": [0.3, 0.3, 0.3],
        "scale_mm": [0.5, 1.0],
        "patterns": ["ground"],
    },
    "geometry": {"shape": "flat", "size_mm": [20, 20]},
    "camera": {
        "resolution": [64, 64],
        "height_mm": [200, 200],
        "focal_mm": 50,
        "sensor_mm": 5,
        "orthographic": True,
    },
    "lights": [{"type": "area", "count": [1, 1], "elevation_deg": [50, 60]}],
    "impurities": [
        {
            "name": "water_stain",
            "kind": "water_stain",
            "probability": 0.5,
            "cell_mm": [6, 8],
            "radius_mm": [1.0, 2.0],
            "amplitude_mm": [0.2, 0.5],
        }
    ],
    "defects": [
        {"name": "scratch", "kind": "scratch", "size_mm": [4, 8], "width_mm": [0.3, 0.5]},
        {"name": "pit", "kind": "pit", "size_mm": [1.0, 2.0]},
    ],
    "render": {"samples": 2, "denoise": False},
    "splits": {"train": {"count": 4, "good_fraction": 1.0}, "val": {"count": 2}, "test": {"count": 4}},
}


@pytest.fixture
def tiny_scene() -> dict:
    return copy.deepcopy(TINY_SCENE)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network fails at once instead of hanging."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted during tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """An empty folder nobody may write to: mode 0555, and for root (whom modes do not stop)
    also immutable (chattr +i)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root and chattr +i is not available here")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)
