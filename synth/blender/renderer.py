"""Blender realisation of a SceneSpec: one Cycles scene per process, parameters changed per image.

`BlenderRenderer().render(spec, maps)` returns the sRGB image and a pixel-exact instance-id
image from the same camera. The ids come from a second, 1-sample Cycles pass with the view
layer's material overridden by an emission of the id texture (nearest texel, pixel filter
≈ 0, no denoising, linear EXR), so every pixel holds exactly one instance id and occlusion is
the renderer's own.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import bpy
import numpy as np

from synth import rig
from synth.blender.materials import (
    BASE_COLOR,
    MAPS_UV,
    MATERIALS,
    METALLIC,
    PLATE_UV,
    id_material,
    material_name,
    surface_material,
)
from synth.errors import ConfigError
from synth.layers import SurfaceMaps
from synth.rendering import RenderResult, to_srgb8
from synth.scene import SceneSpec

PLATE_COLUMNS = 128  # quads across the plate; enough for a smooth curved tile
# Exposure is metered like a camera set up on a white reference card: at render.exposure = 0,
# a white matte surface at the plate centre comes out at this linear value (sRGB ≈ 231), so
# dark materials stay dark and light power and distance do not change the image brightness.
# Glossy metal can reflect the lights themselves; like an auto-exposure with highlight
# priority, the exposure is then lowered until at most CLIPPED of the pixels saturate.
WHITE_LEVEL = 0.8
CLIPPED = 0.005


class BlenderRenderer:
    """Owns the bpy state (one Blender per process); build one per process and call `render` per image.

    `device` is "cpu", or the kind of GPU Cycles renders on ("cuda", "optix", "hip": every GPU
    of that kind it finds); a ConfigError when it finds none. `threads` caps the CPU threads.
    """

    def __init__(self, threads: int = 0, device: str = "cpu") -> None:
        bpy.ops.wm.read_factory_settings(use_empty=True)  # also resets Cycles' device preferences
        self.scene = bpy.context.scene
        self.gpus = gpu_setup(device) if device != "cpu" else []
        self._workdir = Path(tempfile.mkdtemp(prefix="defectsynth-blender-"))
        self._setup_cycles(threads)
        self.maps_image = bpy.data.images.new("maps", 4, 4, alpha=True, float_buffer=True)
        self.maps_image.colorspace_settings.name = "Non-Color"
        self.maps_image.alpha_mode = "CHANNEL_PACKED"
        self.materials = {
            name: surface_material(name, family, self.maps_image) for name, family in MATERIALS.items()
        }
        self.id_material = id_material(self.maps_image)
        self.plate = self._make_plate()
        camera_data = bpy.data.cameras.new("camera")
        self.camera = bpy.data.objects.new("camera", camera_data)
        self.scene.collection.objects.link(self.camera)
        self.scene.camera = self.camera
        self.lights: list[bpy.types.Object] = []
        self._stats: list[tuple[float, str]] = []
        bpy.app.handlers.render_stats.append(self._on_stats)

    def __enter__(self) -> BlenderRenderer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the render handler and the temporary folder of the two passes' files."""
        if self._on_stats in bpy.app.handlers.render_stats:
            bpy.app.handlers.render_stats.remove(self._on_stats)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _on_stats(self, text: str, *_: object) -> None:
        self._stats.append((time.perf_counter(), str(text)))

    def _setup_cycles(self, threads: int) -> None:
        scene = self.scene
        scene.render.engine = "CYCLES"
        scene.cycles.device = "GPU" if self.gpus else "CPU"
        scene.cycles.denoising_use_gpu = bool(self.gpus)
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.max_bounces = 4
        scene.cycles.sample_clamp_indirect = 10.0
        scene.render.resolution_percentage = 100
        scene.render.use_persistent_data = False
        scene.render.threads_mode = "FIXED" if threads else "AUTO"
        if threads:
            scene.render.threads = threads
        settings = scene.render.image_settings  # both passes are read back as linear floats
        settings.file_format, settings.color_depth = "OPEN_EXR", "32"
        settings.color_mode, settings.exr_codec = "RGB", "NONE"
        world = bpy.data.worlds.new("hall")
        world.color = (0.02, 0.02, 0.02)  # a dim factory hall: a little fill light
        scene.world = world

    def _make_plate(self) -> bpy.types.Object:
        mesh = bpy.data.meshes.new("plate")
        n = PLATE_COLUMNS + 1
        faces = [(c, c + 1, n + c + 1, n + c) for c in range(PLATE_COLUMNS)]
        mesh.from_pydata([(0.0, 0.0, 0.0)] * (2 * n), [], faces)
        mesh.uv_layers.new(name=MAPS_UV)
        mesh.uv_layers.new(name=PLATE_UV)
        mesh.polygons.foreach_set("use_smooth", [True] * len(faces))
        mesh.materials.append(self.materials["leather"])
        plate = bpy.data.objects.new("plate", mesh)
        self.scene.collection.objects.link(plate)
        loops = np.zeros(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", loops)
        self._loop_vertices = loops
        return plate

    # --- per image -------------------------------------------------------------------------

    def render(self, spec: SceneSpec, maps: SurfaceMaps) -> RenderResult:
        """Render `spec` with its texture-space `maps` (from `synth.layers.build_maps`); a burst
        spec once per light set-up, with only the lights changed between set-ups.

        timings: path_tracing is Cycles' own sampling and denoising of the RGB passes (from its
        first 'Sample' status to 'Finished'); overhead is everything else this call spends
        (scene and map updates, Cycles' scene sync, the id pass, readback, tone mapping).
        """
        timings = dict.fromkeys(("scene_update", "render_call", "path_tracing", "readback"), 0.0)
        start = time.perf_counter()
        self._update_plate(spec, maps)
        self._update_material(spec)
        self._update_camera(spec)
        timings["scene_update"] = time.perf_counter() - start

        tick = time.perf_counter()
        self._upload_maps(maps)
        timings["map_upload"] = time.perf_counter() - tick

        images = []
        for setup in spec.setups():
            tick = time.perf_counter()
            self._update_lights(setup)
            timings["scene_update"] += time.perf_counter() - tick
            tick = time.perf_counter()
            rgb_path = self._render_rgb(setup)
            timings["render_call"] += time.perf_counter() - tick
            timings["path_tracing"] += self._path_tracing_time(tick, time.perf_counter())
            tick = time.perf_counter()
            images.append(expose(read_exr(rgb_path), setup))
            timings["readback"] += time.perf_counter() - tick

        tick = time.perf_counter()
        ids_path = self._render_ids()
        timings["id_pass"] = time.perf_counter() - tick

        tick = time.perf_counter()
        ids = decode_ids(read_exr(ids_path), spec)
        timings["readback"] += time.perf_counter() - tick
        timings["total"] = time.perf_counter() - start
        timings["overhead"] = timings["total"] - timings["path_tracing"]
        return RenderResult(images[0], ids, timings, images if spec.bursts else [])

    def _update_plate(self, spec: SceneSpec, maps: SurfaceMaps) -> None:
        vertices, plate_mm = rig.plate_grid(spec.geometry, PLATE_COLUMNS)
        mesh = self.plate.data
        mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
        rows, cols = maps.shape
        span = np.array([cols * maps.texel_mm, rows * maps.texel_mm])
        per_loop = plate_mm[self._loop_vertices]
        # Texel row 0 (plate y = 0, the top as seen by the camera) is the image's last row in
        # Blender (row 0 is at the bottom), hence v = 1 − y / span.
        uv = np.stack([per_loop[:, 0] / span[0], 1.0 - per_loop[:, 1] / span[1]], axis=1)
        mesh.uv_layers[MAPS_UV].data.foreach_set("uv", uv.astype(np.float32).ravel())
        mesh.uv_layers[PLATE_UV].data.foreach_set("uv", per_loop.astype(np.float32).ravel())
        mesh.update()

    def _update_material(self, spec: SceneSpec) -> None:
        m = spec.material
        material = self.materials[material_name(m.family, m.pattern)]
        self.plate.data.materials[0] = material
        nodes = material.node_tree.nodes
        values = {
            "seed_x": m.offset_mm[0],
            "seed_y": m.offset_mm[1],
            "scale": m.scale_mm,
            "roughness": m.roughness,
            "bump": m.bump_strength,
            "variation": m.color_variation,
            "pattern": float(m.pattern in ("embossed", "twill", "ground")),
            "period": m.weave.repeat if m.weave else 2.0 + (m.pattern == "twill"),
            "weft_ratio": m.weave.weft_ratio if m.weave else 1.0,
            "direction": m.weave.direction if m.weave else 1.0,
            "weft_shade": m.weave.weft_shade if m.weave else 0.9,
            "gap_shade": m.weave.gap_shade if m.weave else 0.25,
            "mottle": m.weave.mottle if m.weave else 0.0,
            "grain_contrast": m.grain.contrast if m.grain else 1.0,
            "crease_width": m.grain.crease_width if m.grain else 0.05,
            "mark_contrast": m.grinding.marks if m.grinding else 1.0,
            "band_contrast": m.grinding.bands if m.grinding else 1.0,
            "line_contrast": m.grinding.lines if m.grinding else 1.0,
            "grinding_grain": m.grinding.grain if m.grinding else 1.0,
        }
        if m.family == "metal":
            values[METALLIC] = m.metallic
        for name, value in values.items():
            nodes[name].outputs[0].default_value = float(value)
        nodes[BASE_COLOR].outputs[0].default_value = (*m.base_color, 1.0)

    def _update_camera(self, spec: SceneSpec) -> None:
        cam = spec.camera
        data = self.camera.data
        data.sensor_fit = "HORIZONTAL"
        data.sensor_width = cam.sensor_mm
        data.lens = cam.focal_mm
        data.type = "ORTHO" if cam.orthographic else "PERSP"
        data.ortho_scale = cam.view_mm[0] * rig.M_PER_MM
        height_m = cam.height_mm * rig.M_PER_MM
        data.clip_start, data.clip_end = height_m * 0.05, height_m * 20
        self.camera.matrix_world = rig.camera_matrix(cam).T.tolist()
        self.scene.render.resolution_x = cam.width_px
        self.scene.render.resolution_y = cam.height_px

    def _update_lights(self, spec: SceneSpec) -> None:
        wanted = [e for light in spec.lights for e in rig.emitters(light)]
        while len(self.lights) < len(wanted):
            data = bpy.data.lights.new(f"light{len(self.lights)}", "AREA")
            data.use_temperature = True
            obj = bpy.data.objects.new(data.name, data)
            self.scene.collection.objects.link(obj)
            self.lights.append(obj)
        for k, obj in enumerate(self.lights):
            obj.hide_render = k >= len(wanted)
            if obj.hide_render:
                continue
            e = wanted[k]
            obj.matrix_world = e.matrix.T.tolist()
            obj.data.shape = e.shape
            obj.data.size, obj.data.size_y = e.size_m, e.size_y_m
            obj.data.energy = e.power_w
            obj.data.temperature = e.temperature_k

    def _upload_maps(self, maps: SurfaceMaps) -> None:
        rows, cols = maps.shape
        image = self.maps_image
        if tuple(image.size) != (cols, rows):
            image.scale(cols, rows)
        texels = np.stack(
            [maps.reflectance, maps.roughness, maps.height_mm, maps.instance_ids.astype(np.float32)],
            axis=-1,
        )
        image.pixels.foreach_set(np.ascontiguousarray(texels[::-1], np.float32).ravel())
        image.update()

    def _render_rgb(self, spec: SceneSpec) -> Path:
        scene, cycles = self.scene, self.scene.cycles
        cycles.samples = spec.render.samples
        threshold = spec.render.adaptive_threshold
        cycles.use_adaptive_sampling = threshold is not None
        if threshold is not None:
            cycles.adaptive_threshold = threshold
        cycles.use_denoising = spec.render.denoise
        cycles.filter_width = 1.5
        cycles.seed = zlib.crc32(f"{spec.config_hash}:{spec.seed}:{spec.index}".encode()) % 2**31
        scene.render.film_transparent = False
        scene.view_layers[0].material_override = None
        return self._render_to("rgb.exr")

    def _render_ids(self) -> Path:
        scene, cycles = self.scene, self.scene.cycles
        cycles.samples = 1
        cycles.use_adaptive_sampling = False
        cycles.use_denoising = False
        cycles.filter_width = 0.01  # every pixel is its centre: no mixing of ids
        scene.render.film_transparent = True  # background → 0
        scene.view_layers[0].material_override = self.id_material
        return self._render_to("ids.exr")

    def _render_to(self, name: str) -> Path:
        path = self._workdir / name
        self.scene.render.filepath = str(path)
        self._stats.clear()
        with stdout_silenced():  # Cycles prints a progress line per tile and sample
            bpy.ops.render.render(write_still=True)
        return path

    def _path_tracing_time(self, begin: float, end: float) -> float:
        """From Cycles' first 'Sample' status to its 'Finished' (sampling and denoising)."""
        sampling = [t for t, text in self._stats if "Sample " in text]
        finished = [t for t, text in self._stats if "Finished" in text]
        first = sampling[0] if sampling else begin
        return (finished[-1] if finished else end) - first


def gpu_setup(device: str) -> list[str]:
    """Make Cycles render on every GPU of kind `device` ("cuda", "optix" or "hip") and on no
    CPU; the names of those GPUs. A one-line ConfigError when Cycles finds none."""
    preferences = bpy.context.preferences.addons["cycles"].preferences
    with stdout_silenced():  # Cycles prints a warning for each GPU library it cannot load
        preferences.refresh_devices()
    entries = list(preferences.devices)
    chosen = gpus_of_kind(device, [(entry.type, entry.name) for entry in entries])
    preferences.compute_device_type = device.upper()
    for k, entry in enumerate(entries):
        entry.use = k in chosen
    return [entries[k].name for k in chosen]


def gpus_of_kind(device: str, found: Sequence[tuple[str, str]]) -> list[int]:
    """The indices of the (type, name) pairs Cycles lists that are GPUs of kind `device`;
    a ConfigError naming `--device` and what Cycles found when there is none."""
    kind = device.upper()
    chosen = [k for k, (type_, _) in enumerate(found) if type_ == kind]
    if not chosen:
        seen = ", ".join(f"{type_} {name}" for type_, name in found) or "no device"
        raise ConfigError(f"--device {device}: no {kind} device found (Cycles sees: {seen})")
    return chosen


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (Blender writes there from C, past sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def read_exr(path: Path) -> np.ndarray:
    """(H, W, 3) linear float32, row 0 at the top (Blender stores images bottom-up)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, -1)[::-1, :, :3]


def exposure_stops(linear: np.ndarray, spec: SceneSpec) -> float:
    """White-card metering, capped so that at most CLIPPED of the pixels saturate, plus
    render.exposure."""
    white = rig.irradiance_at_centre(spec.lights) / math.pi  # radiance of a white card
    stops = math.log2(WHITE_LEVEL / max(white, 1e-12))
    bright = float(np.quantile(linear.max(axis=2), 1.0 - CLIPPED))
    if bright * 2.0**stops > 1.0:
        stops = -math.log2(bright)
    return stops + spec.render.exposure


def expose(linear: np.ndarray, spec: SceneSpec) -> np.ndarray:
    """Scene-linear → 8-bit sRGB, after exposure."""
    return to_srgb8(linear * np.float32(2.0 ** exposure_stops(linear, spec)))


def decode_ids(values: np.ndarray, spec: SceneSpec) -> np.ndarray:
    ids = np.rint(values[:, :, 0])
    if np.abs(values[:, :, 0] - ids).max() > 1e-3:
        raise RuntimeError(f"id pass of image {spec.image_id} did not decode to integers")
    return ids.astype(np.uint16)


def blender_version() -> str:
    return bpy.app.version_string


__all__ = ["BlenderRenderer", "blender_version", "gpu_setup", "gpus_of_kind"]
