"""The raster view and what renderers share: no bpy needed, and nothing it cannot show."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from synth.rendering import to_srgb8


def test_raster_view_and_render_loop_import_without_bpy() -> None:
    code = (
        "import sys; import synth.raster, synth.rendering, synth.rig, synth.render, synth.cli; "
        "sys.exit('bpy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_srgb_encoding_clips_and_follows_the_srgb_curve() -> None:
    linear = np.array([-0.5, 0.0, 0.001, 0.0031308, 0.18, 0.5, 1.0, 3.0], np.float32)
    # 0.001 is on the linear segment (12.92·x), the rest on 1.055·x^(1/2.4) − 0.055
    np.testing.assert_array_equal(to_srgb8(linear), [0, 0, 3, 10, 118, 188, 255, 255])
