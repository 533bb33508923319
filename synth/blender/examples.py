"""Small scene configs of each material family, for the renderer's tests, benchmark and docs.

They are plain dicts in the `scenes/*.yaml` schema (validated by `synth.config.parse_config`);
real projects use their own YAML files.
"""

from __future__ import annotations

import copy
from typing import Any

from synth.config import SceneConfig, deep_merge, parse_config

_COMMON: dict[str, Any] = {
    "seed": 7,
    "geometry": {"shape": "flat", "size_mm": [44, 44]},
    "camera": {"resolution": [256, 256], "height_mm": [190, 210], "focal_mm": 50, "sensor_mm": 10},
    "lights": [
        {"type": "ring", "count": [1, 1], "elevation_deg": [60, 85], "power_w": [8, 14]},
        {"type": "bar", "count": [1, 1], "elevation_deg": [10, 25], "power_w": [10, 25]},
    ],
    "impurities": [
        {
            "name": "water_stain",
            "kind": "water_stain",
            "probability": 0.5,
            "cell_mm": [9, 14],
            "radius_mm": [1.5, 3.5],
            "amplitude_mm": [0.3, 0.9],
            "alpha": [-0.12, -0.04],
        }
    ],
    "render": {"samples": 16, "denoise": True},
    "splits": {"train": {"count": 4, "good_fraction": 0.0}, "test": {"count": 4}},
}

_FAMILIES: dict[str, dict[str, Any]] = {
    "leather": {
        "surface": {
            "family": "leather",
            "color_low": [0.18, 0.08, 0.03],
            "color_high": [0.42, 0.22, 0.10],
            "scale_mm": [0.6, 1.2],
            "roughness": [0.45, 0.7],
            "bump_strength": [0.3, 0.8],
            "patterns": ["grain", "embossed"],
        },
        "defects": [
            {
                "name": "scratch",
                "kind": "scratch",
                "size_mm": [4, 14],
                "width_mm": [0.15, 0.35],
                "depth_mm": [0.03, 0.08],
                "reflectance": [0.02, 0.08],
            },
            {
                "name": "hole",
                "kind": "hole",
                "size_mm": [0.6, 1.6],
                "depth_mm": [0.5, 1.0],
                "reflectance": [-0.3, -0.2],
            },
            {
                "name": "crease",
                "kind": "crease",
                "size_mm": [8, 20],
                "width_mm": [0.8, 1.6],
                "depth_mm": [0.05, 0.15],
                "reflectance": [-0.03, 0.0],
            },
        ],
    },
    "textile": {
        "surface": {
            "family": "textile",
            "color_low": [0.05, 0.09, 0.2],
            "color_high": [0.12, 0.18, 0.35],
            "scale_mm": [0.5, 0.9],
            "roughness": [0.7, 0.9],
            "bump_strength": [0.6, 1.0],
            "patterns": ["plain", "twill"],
        },
        "defects": [
            {
                "name": "hole",
                "kind": "hole",
                "size_mm": [1, 3],
                "depth_mm": [0.3, 0.6],
                "reflectance": [-0.15, -0.08],
            },
            {
                "name": "snag",
                "kind": "snag",
                "size_mm": [3, 8],
                "width_mm": [0.3, 0.6],
                "depth_mm": [0.1, 0.2],
                "reflectance": [0.02, 0.06],
            },
            {
                "name": "missing_thread",
                "kind": "missing_thread",
                "width_mm": [0.4, 0.8],
                "depth_mm": [0.1, 0.2],
                "reflectance": [-0.08, -0.04],
            },
        ],
    },
    "metal": {
        "surface": {
            "family": "metal",
            "color_low": [0.55, 0.55, 0.56],
            "color_high": [0.75, 0.75, 0.76],
            "scale_mm": [0.1, 0.3],
            "roughness": [0.25, 0.4],
            "bump_strength": [0.5, 1.0],
            "patterns": ["brushed"],
        },
        "defects": [
            {
                "name": "scratch",
                "kind": "scratch",
                "size_mm": [5, 15],
                "width_mm": [0.1, 0.25],
                "depth_mm": [0.01, 0.03],
                "reflectance": [0.05, 0.1],
            },
            {
                "name": "dent",
                "kind": "dent",
                "size_mm": [2, 5],
                "depth_mm": [0.05, 0.15],
                "reflectance": [0, 0],
            },
            {
                "name": "pit",
                "kind": "pit",
                "size_mm": [0.3, 1.0],
                "depth_mm": [0.2, 0.4],
                "reflectance": [-0.3, -0.15],
            },
        ],
    },
    "metal_tile": {  # ground ferrite tile (cf. the Magnetic Tile Defect dataset)
        "geometry": {"shape": "curved_tile", "size_mm": [48, 44], "bend_deg": [50, 70]},
        "surface": {
            "family": "metal",
            "color_low": [0.05, 0.05, 0.05],
            "color_high": [0.08, 0.08, 0.08],
            "color_variation": [0.1, 0.2],
            "scale_mm": [0.1, 0.2],
            "roughness": [0.3, 0.45],
            "bump_strength": [0.6, 1.0],
            "patterns": ["ground"],
        },
        "lights": [
            {"type": "ring", "count": [1, 1], "elevation_deg": [75, 85], "power_w": [8, 12]},
            {
                "type": "bar",
                "count": [0, 1],
                "elevation_deg": [30, 50],
                "azimuth_deg": [80, 100],
                "power_w": [4, 8],
            },
        ],
        "impurities": [],
        "defects": [
            {
                "name": "blowhole",
                "kind": "pit",
                "size_mm": [0.6, 2.0],
                "depth_mm": [0.2, 0.5],
                "reflectance": [-0.05, -0.03],
            },
            {
                "name": "crack",
                "kind": "crack",
                "size_mm": [6, 18],
                "width_mm": [0.1, 0.25],
                "depth_mm": [0.1, 0.3],
                "reflectance": [-0.05, -0.03],
            },
            {
                "name": "break",
                "kind": "break",
                "size_mm": [4, 10],
                "depth_mm": [0.3, 0.8],
                "reflectance": [-0.04, -0.02],
            },
            {
                "name": "fray",
                "kind": "fray",
                "size_mm": [6, 14],
                "width_mm": [0.3, 0.8],
                "depth_mm": [0.05, 0.15],
                "reflectance": [-0.03, -0.01],
            },
            {
                "name": "uneven",
                "kind": "uneven",
                "size_mm": [6, 14],
                "depth_mm": [0.0, 0.02],
                "reflectance": [0.01, 0.03],
                "roughness": [0.1, 0.2],
            },
        ],
    },
}

FAMILY_EXAMPLES = tuple(_FAMILIES)


def example_config(name: str, **overrides: Any) -> SceneConfig:
    """The example scene `name` (leather, textile, metal, metal_tile) with deep-merged overrides."""
    data = deep_merge(copy.deepcopy(_COMMON), {"name": name, **_FAMILIES[name]})
    return parse_config(deep_merge(data, overrides), f"example {name}")
