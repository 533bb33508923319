"""The Blender renderer: images with texture, pixel-exact ids, orientation, determinism, and
the Cycles settings of a spec and of a device (GPUs are looked for, none is needed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("bpy")

import synth.blender.renderer as blender  # noqa: E402
from synth.blender import BlenderRenderer  # noqa: E402
from synth.config import load_config  # noqa: E402
from synth.errors import ConfigError  # noqa: E402
from synth.layers import SurfaceMaps, build_maps  # noqa: E402
from synth.rendering import RenderResult  # noqa: E402
from synth.rig import texels_under_pixels  # noqa: E402
from synth.scene import BurstSpec, LightSpec, SceneSpec, sample_scene  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def renderer() -> BlenderRenderer:
    r = BlenderRenderer()
    yield r
    r.close()


SCENES = Path(__file__).resolve().parents[1] / "scenes"


def tiny(name: str, index: int, **camera: object) -> SceneSpec:
    """A 64² / 2-sample spec of scenes/<name>.yaml whose train images all carry defects."""
    overrides = {
        "camera": {"resolution": [64, 64], **camera},
        "render": {"samples": 2},
        "splits": {"train": {"count": 8, "good_fraction": 0.0}},
    }
    return sample_scene(load_config(SCENES / f"{name}.yaml", overrides), index)


def expected_ids(spec: SceneSpec, maps: SurfaceMaps) -> np.ndarray:
    """The texture-space ids mapped to the image (flat plate, camera straight down)."""
    rows, cols = texels_under_pixels(spec, maps.texel_mm)
    inside = (rows >= 0) & (rows < maps.shape[0]) & (cols >= 0) & (cols < maps.shape[1])
    ids = np.zeros(rows.shape, np.uint16)
    ids[inside] = maps.instance_ids[rows[inside], cols[inside]]
    return ids


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


@pytest.mark.parametrize("family", ["leather", "textile", "metal", "metal_tile"])
def test_each_family_renders_texture_and_known_ids(renderer: BlenderRenderer, family: str) -> None:
    spec = tiny(family, 1)
    maps = build_maps(spec)
    result = renderer.render(spec, maps)
    assert isinstance(result, RenderResult)
    assert result.rgb.shape == (64, 64, 3) and result.rgb.dtype == np.uint8
    assert result.instance_ids.shape == (64, 64) and result.instance_ids.dtype == np.uint16
    assert luminance(result.rgb).std() > 2.0, "image is flat"
    assert 20 < result.rgb.mean() < 235, "image is badly exposed"
    known = set(spec.instance_classes) | {0}
    assert set(np.unique(result.instance_ids).tolist()) <= known
    assert spec.marks
    if spec.geometry.shape == "flat":
        expected = expected_ids(spec, maps)
        values, counts = np.unique(expected[expected > 0], return_counts=True)
        visible = {int(v) for v, c in zip(values, counts, strict=True) if c >= 3}
        assert visible <= set(np.unique(result.instance_ids).tolist())
    assert {"path_tracing", "overhead"} <= set(result.timings)
    assert result.timings["overhead"] >= 0 and result.timings["path_tracing"] > 0


def test_orthographic_id_mask_matches_texture_space_mask(renderer: BlenderRenderer) -> None:
    spec = tiny("leather", 0, orthographic=True)
    maps = build_maps(spec)
    rendered = renderer.render(spec, maps).instance_ids
    expected = expected_ids(spec, maps)
    assert expected.any()
    both = ((rendered > 0) & (expected > 0)).sum()
    either = ((rendered > 0) | (expected > 0)).sum()
    assert both / either >= 0.98
    assert (rendered == expected).mean() >= 0.98


def test_texel_row_zero_is_at_the_top_of_the_image(renderer: BlenderRenderer) -> None:
    """Hand-made maps: id 1 in the plate's top-left quarter, id 2 in its bottom-right one."""
    spec = tiny("metal", 0, orthographic=True)
    spec = replace(spec, stains=(), marks=())
    maps = SurfaceMaps.empty((40, 40), spec.geometry.width_mm / 40)
    maps.instance_ids[:20, :20] = 1
    maps.instance_ids[20:, 20:] = 2
    ids = renderer.render(spec, maps).instance_ids
    assert (ids[:28, :28] == 1).all()
    assert (ids[36:, 36:] == 2).all()
    assert not ids[:28, 36:].any() and not ids[36:, :28].any()


def test_same_spec_renders_the_same_ids_twice(renderer: BlenderRenderer) -> None:
    spec = tiny("textile", 2)
    maps = build_maps(spec)
    first = renderer.render(spec, maps)
    renderer.render(tiny("metal", 3), build_maps(tiny("metal", 3)))  # change everything between
    second = renderer.render(spec, maps)
    np.testing.assert_array_equal(first.instance_ids, second.instance_ids)
    assert np.abs(first.rgb.astype(int) - second.rgb.astype(int)).max() <= 1


def test_curved_tile_falls_off_towards_its_edges(renderer: BlenderRenderer) -> None:
    """A tile bent about its vertical axis under a light from above: the flanks turn away."""
    spec = tiny("metal_tile", 5)
    above = LightSpec("area", 0.0, 90.0, 200.0, 100.0, 8.0, 5500.0)
    bent = replace(spec.geometry, bend_deg=80.0)
    spec = replace(spec, stains=(), marks=(), lights=(above,), geometry=bent)
    result = renderer.render(spec, build_maps(spec))
    columns = luminance(result.rgb).mean(axis=0)
    assert columns[24:40].mean() > 1.3 * max(columns[6:12].mean(), columns[-12:-6].mean())


def test_a_burst_renders_each_set_up_with_the_same_ids(renderer: BlenderRenderer) -> None:
    """Only the lights change between set-ups: one id pass, one image per set-up."""
    spec = tiny("metal", 1)
    raking = [
        replace(light, elevation_deg=12.0, azimuth_deg=a) for light in spec.lights[:1] for a in (0.0, 90.0)
    ]
    burst = replace(
        spec, bursts=(BurstSpec("raking0", tuple(raking[:1])), BurstSpec("raking90", tuple(raking[1:])))
    )
    maps = build_maps(spec)
    result = renderer.render(burst, maps)
    alone = renderer.render(replace(spec, lights=tuple(raking[1:])), maps)
    assert len(result.bursts) == 2 and result.rgb is result.bursts[0]
    np.testing.assert_array_equal(result.instance_ids, alone.instance_ids)
    assert np.abs(result.bursts[1].astype(int) - alone.rgb.astype(int)).max() <= 1
    assert np.abs(result.bursts[0].astype(int) - result.bursts[1].astype(int)).mean() > 2


def test_adaptive_sampling_is_set_from_the_spec_for_the_rgb_pass_only(
    renderer: BlenderRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[tuple[str, bool, float]] = []
    render_to = renderer._render_to

    def spy(name: str) -> Path:
        cycles = renderer.scene.cycles
        passes.append((name, cycles.use_adaptive_sampling, round(cycles.adaptive_threshold, 6)))
        return render_to(name)

    monkeypatch.setattr(renderer, "_render_to", spy)
    spec = tiny("leather", 4)
    adaptive = replace(spec, render=replace(spec.render, samples=8, adaptive_threshold=0.05))
    maps = build_maps(spec)
    result = renderer.render(adaptive, maps)
    plain = renderer.render(replace(adaptive, render=replace(adaptive.render, adaptive_threshold=None)), maps)
    assert [(name, on) for name, on, _ in passes] == [
        ("rgb.exr", True),
        ("ids.exr", False),
        ("rgb.exr", False),
        ("ids.exr", False),
    ]
    assert passes[0][2] == 0.05
    np.testing.assert_array_equal(result.instance_ids, plain.instance_ids)
    assert np.abs(result.rgb.astype(int) - plain.rgb.astype(int)).mean() < 8  # the same view


def test_gpus_of_a_kind_are_picked_or_what_cycles_sees_is_named() -> None:
    found = [("CUDA", "RTX A"), ("OPTIX", "RTX A"), ("CPU", "EPYC"), ("CUDA", "RTX B")]
    assert blender.gpus_of_kind("cuda", found) == [0, 3]
    assert blender.gpus_of_kind("optix", found) == [1]
    with pytest.raises(ConfigError) as error:
        blender.gpus_of_kind("hip", found)
    assert str(error.value) == (
        "--device hip: no HIP device found (Cycles sees: CUDA RTX A, OPTIX RTX A, CPU EPYC, CUDA RTX B)"
    )
    with pytest.raises(ConfigError, match=r"^--device cuda: no CUDA device found \(Cycles sees: CPU EPYC\)$"):
        blender.gpus_of_kind("cuda", [("CPU", "EPYC")])


def fake_cycles_preferences(*devices: tuple[str, str]) -> SimpleNamespace:
    """What bpy.context.preferences.addons['cycles'].preferences shows of a machine's devices."""
    entries = [SimpleNamespace(type=t, name=n, use=t != "CPU") for t, n in devices]
    return SimpleNamespace(devices=entries, compute_device_type="NONE", refresh_devices=lambda: None)


def test_gpu_setup_uses_every_gpu_of_the_kind_and_no_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    preferences = fake_cycles_preferences(("CPU", "EPYC"), ("CUDA", "RTX A"), ("OPTIX", "RTX A"))
    addons = {"cycles": SimpleNamespace(preferences=preferences)}
    monkeypatch.setattr(
        blender, "bpy", SimpleNamespace(context=SimpleNamespace(preferences=SimpleNamespace(addons=addons)))
    )
    assert blender.gpu_setup("optix") == ["RTX A"]
    assert preferences.compute_device_type == "OPTIX"
    assert [e.use for e in preferences.devices] == [False, False, True]
    with pytest.raises(ConfigError, match="^--device hip: no HIP device found"):
        blender.gpu_setup("hip")


def test_a_gpu_device_makes_cycles_render_on_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A renderer of its own (a factory reset of bpy), so the last test of this module."""
    monkeypatch.setattr(blender, "gpu_setup", lambda device: [f"{device} GPU"])
    with BlenderRenderer(device="cuda") as gpu:
        assert gpu.gpus == ["cuda GPU"]
        assert gpu.scene.cycles.device == "GPU" and gpu.scene.cycles.denoising_use_gpu
    with BlenderRenderer() as cpu:
        assert cpu.gpus == [] and cpu.scene.cycles.device == "CPU"
