"""SceneSpec: every sampled parameter of one image, as plain data (Kubric-style).

Sampling is a pure function of (config, seed, image index): shards rendered on different
machines produce exactly the specs a single run would. Renderers (Blender or the numpy
raster view) only realise a spec; the spec is saved beside every image.

Coordinates: plate millimetres, origin at the plate's top-left corner as seen by the camera,
x to the right, y downwards (image convention).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from synth.appearance import AppearanceSpec, sample_appearance
from synth.config import (
    SPLITS,
    DefectConfig,
    ImpurityConfig,
    LightConfig,
    SceneConfig,
    own_stream,
    sample_range,
)
from synth.errors import ConfigError
from synth.photo import PhotoSpec, sample_photo
from synth.sensor import SensorSpec, sample_sensor


@dataclass(frozen=True)
class ClassSpec:
    id: int
    name: str
    kind: str  # "defect" | "impurity"
    shape: str  # the defect or impurity kind that draws it


@dataclass(frozen=True)
class WeaveSpec:
    """A textile's yarn geometry (see `synth.config.WeaveConfig`)."""

    weft_ratio: float
    repeat: int  # threads per repeat of the weave: 2 for plain, the twill's repeat otherwise
    direction: int  # +1: Z twill (/), -1: S twill (\\)
    weft_shade: float
    gap_shade: float
    mottle: float


@dataclass(frozen=True)
class GrainSpec:
    """A leather's grain (see `synth.config.GrainConfig`)."""

    contrast: float
    crease_width: float


@dataclass(frozen=True)
class GrindingSpec:
    """A metal's tool-mark contrasts (see `synth.config.GrindingConfig`)."""

    marks: float
    bands: float
    lines: float
    grain: float


@dataclass(frozen=True)
class MaterialSpec:
    family: str
    pattern: str
    base_color: tuple[float, float, float]
    color_variation: float
    scale_mm: float
    roughness: float
    bump_strength: float
    seed: int
    metallic: float = 0.0
    weave: WeaveSpec | None = None
    look: str | None = None  # the surface look drawn, when the config has looks
    grain: GrainSpec | None = None
    grinding: GrindingSpec | None = None

    @property
    def offset_mm(self) -> tuple[float, float]:
        """Where this image's texture starts in the noise fields, in mm: the same in both views."""
        x, y = np.random.default_rng(self.seed).uniform(0, 400, 2)
        return float(x), float(y)


GRINDING_STREAM = 0x6214D  # the random stream of a metal's grinding contrasts

# Spec fields added after datasets were written: left out of `to_dict` while None, so the
# meta of older scenes stays byte-identical.
ADDED_MATERIAL_FIELDS = ("weave", "look", "grain", "grinding")


@dataclass(frozen=True)
class GeometrySpec:
    shape: str
    width_mm: float
    height_mm: float
    bend_deg: float


@dataclass(frozen=True)
class CameraSpec:
    width_px: int
    height_px: int
    height_mm: float
    focal_mm: float
    sensor_mm: float
    orthographic: bool
    tilt_deg: float = 0.0
    roll_deg: float = 0.0

    @property
    def mm_per_px(self) -> float:
        """Footprint of one pixel on the plate plane (sensor width spans the image width)."""
        return self.sensor_mm * self.height_mm / self.focal_mm / self.width_px

    @property
    def view_mm(self) -> tuple[float, float]:
        return self.width_px * self.mm_per_px, self.height_px * self.mm_per_px


@dataclass(frozen=True)
class LightSpec:
    type: str
    azimuth_deg: float
    elevation_deg: float
    distance_mm: float
    size_mm: float
    power_w: float
    temperature_k: float


@dataclass(frozen=True)
class BurstSpec:
    """One light set-up of a burst: its name and the lights that replace the scene's."""

    name: str
    lights: tuple[LightSpec, ...]


# A stream of its own per set-up, so that adding bursts changes none of the scene's other draws.
BURST_STREAM = 0xB0257


@dataclass(frozen=True)
class StainSpec:
    """A water stain: Perlin-perturbed disc with reflectance d̂^γ·α."""

    instance_id: int
    class_id: int
    center_mm: tuple[float, float]
    radius_mm: float
    noise_frequency: float
    amplitude_mm: float
    gamma: float
    alpha: float
    heterogeneity: float
    rim_darkening: float
    noise_offset: tuple[float, float]


@dataclass(frozen=True)
class MarkSpec:
    """A defect or a non-stain impurity (fingerprint, fuzz), drawn by `synth.layers`."""

    instance_id: int
    class_id: int
    kind: str
    points_mm: tuple[tuple[float, float], ...]  # polyline, centre, or polygon outline
    size_mm: float
    width_mm: float
    depth_mm: float
    reflectance: float
    roughness: float
    angle_deg: float
    seed: int


@dataclass(frozen=True)
class RenderSpec:
    samples: int
    denoise: bool
    exposure: float
    texels_per_px: int
    adaptive_threshold: float | None = None  # None: Cycles' adaptive sampling off


@dataclass(frozen=True)
class SceneSpec:
    config_name: str
    config_hash: str
    seed: int
    index: int
    split: str
    good: bool
    material: MaterialSpec
    geometry: GeometrySpec
    camera: CameraSpec
    lights: tuple[LightSpec, ...]
    stains: tuple[StainSpec, ...]
    marks: tuple[MarkSpec, ...]
    render: RenderSpec
    classes: tuple[ClassSpec, ...] = field(default=())
    sensor: SensorSpec | None = None
    appearance: AppearanceSpec | None = None
    bursts: tuple[BurstSpec, ...] = ()
    photo: PhotoSpec | None = None  # the photo crop of a photo surface

    @property
    def image_id(self) -> str:
        return f"{self.index:06d}"

    @property
    def instance_classes(self) -> dict[int, int]:
        """Instance id → class id for everything placed in the scene."""
        return {x.instance_id: x.class_id for x in (*self.stains, *self.marks)}

    @property
    def visible_window_mm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the camera footprint on the plate, clipped to the plate."""
        vw, vh = self.camera.view_mm
        cx, cy = self.geometry.width_mm / 2, self.geometry.height_mm / 2
        return (
            max(0.0, cx - vw / 2),
            max(0.0, cy - vh / 2),
            min(self.geometry.width_mm, cx + vw / 2),
            min(self.geometry.height_mm, cy + vh / 2),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ADDED_MATERIAL_FIELDS:
            if data["material"][name] is None:
                del data["material"][name]
        if not self.bursts:  # the meta of scenes without bursts stays byte-identical
            del data["bursts"]
        if self.render.adaptive_threshold is None:  # so does that of scenes without adaptive sampling
            del data["render"]["adaptive_threshold"]
        if self.photo is None:  # and that of scenes without a photo surface
            del data["photo"]
        return data

    def setups(self) -> list[SceneSpec]:
        """The spec once per light set-up of its burst (the set-up's lights in place of the
        scene's), or just itself without bursts."""
        return [replace(self, lights=b.lights) for b in self.bursts] or [self]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSpec:
        def tuples(value: Any) -> Any:
            return tuple(tuples(v) for v in value) if isinstance(value, list) else value

        def build(kind: type, value: dict[str, Any]) -> Any:
            return kind(**{k: tuples(v) for k, v in value.items()})

        return cls(
            **{
                **{k: data[k] for k in ("config_name", "config_hash", "seed", "index", "split", "good")},
                "material": build(
                    MaterialSpec,
                    {
                        **data["material"],
                        **{
                            name: build(kind, data["material"][name]) if data["material"].get(name) else None
                            for name, kind in (
                                ("weave", WeaveSpec),
                                ("grain", GrainSpec),
                                ("grinding", GrindingSpec),
                            )
                        },
                    },
                ),
                "geometry": build(GeometrySpec, data["geometry"]),
                "camera": build(CameraSpec, data["camera"]),
                "lights": tuple(build(LightSpec, x) for x in data["lights"]),
                "stains": tuple(build(StainSpec, x) for x in data["stains"]),
                "marks": tuple(build(MarkSpec, x) for x in data["marks"]),
                "render": build(RenderSpec, data["render"]),
                "classes": tuple(build(ClassSpec, x) for x in data["classes"]),
                "sensor": build(SensorSpec, data["sensor"]) if data.get("sensor") else None,
                "appearance": build(AppearanceSpec, data["appearance"]) if data.get("appearance") else None,
                "bursts": tuple(
                    BurstSpec(b["name"], tuple(build(LightSpec, x) for x in b["lights"]))
                    for b in data.get("bursts", [])
                ),
                "photo": build(PhotoSpec, data["photo"]) if data.get("photo") else None,
            }
        )


def class_table(config: SceneConfig) -> tuple[ClassSpec, ...]:
    """Class ids in config order: defects first, then impurities; 0 is background."""
    entries: list[tuple[str, str, str]] = [(d.name, "defect", d.kind) for d in config.defects]
    entries += [(i.name, "impurity", i.kind) for i in config.impurities]
    return tuple(ClassSpec(i + 1, n, k, s) for i, (n, k, s) in enumerate(entries))


def split_of(config: SceneConfig, index: int) -> str:
    """Images are numbered train first, then val, then test."""
    start = 0
    for split, count in config.split_counts().items():
        if index < start + count:
            return split
        start += count
    raise IndexError(f"image index {index} is beyond the {start} images the config defines")


def total_images(config: SceneConfig) -> int:
    return sum(config.split_counts().values())


def sample_scene(config: SceneConfig, index: int) -> SceneSpec:
    """Sample the spec of image `index`; depends only on (config, config.seed, index)."""
    split = split_of(config, index)
    rng = np.random.default_rng([config.seed, index])
    classes = class_table(config)
    split_config = config.splits[split]  # type: ignore[index]
    good = bool(rng.random() < split_config.good_fraction)

    material = _sample_material(config, rng, index)
    surface = next((x for x in config.surface.looks or [] if x.name == material.look), config.surface)
    geometry = config.geometry
    size_w, size_h = geometry.size_mm
    cam = config.camera
    randomization = config.randomization
    camera = CameraSpec(
        width_px=cam.resolution[0],
        height_px=cam.resolution[1],
        height_mm=sample_range(rng, cam.height_mm),
        focal_mm=cam.focal_mm,
        sensor_mm=cam.sensor_mm,
        orthographic=cam.orthographic,
        tilt_deg=sample_range(rng, randomization.camera_tilt_deg),
        roll_deg=sample_range(rng, randomization.camera_roll_deg) * rng.choice([-1, 1]),
    )
    lights = sample_lights(config.lights, rng)
    spec = SceneSpec(
        config_name=config.name,
        config_hash=config.digest(),
        seed=config.seed,
        index=index,
        split=split,
        good=good,
        material=material,
        geometry=GeometrySpec(geometry.shape, size_w, size_h, sample_range(rng, geometry.bend_deg)),
        camera=camera,
        lights=lights,
        stains=(),
        marks=(),
        render=RenderSpec(
            samples=config.render.samples,
            denoise=config.render.denoise,
            exposure=sample_range(rng, config.render.exposure),
            texels_per_px=config.render.texels_per_px,
            adaptive_threshold=config.render.adaptive_threshold,
        ),
        classes=classes,
        sensor=None if config.sensor is None else sample_sensor(config.sensor, config.seed, index),
        appearance=(
            None if config.appearance is None else sample_appearance(config.appearance, config.seed, index)
        ),
        bursts=tuple(
            BurstSpec(b.name, sample_lights(b.lights, own_stream(config.seed, index, BURST_STREAM, k)))
            for k, b in enumerate(config.bursts or [])
        ),
        photo=None if surface.photo is None else sample_photo(config, surface.photo, index),
    )
    window = spec.visible_window_mm
    next_id = 1
    stains: list[StainSpec] = []
    marks: list[MarkSpec] = []
    by_name = {c.name: c for c in classes}
    for impurity in config.impurities:
        if rng.random() >= impurity.probability:
            continue
        class_id = by_name[impurity.name].id
        if impurity.kind == "water_stain":
            new = sample_stains(impurity, window, rng, class_id, next_id)
            stains += new
            next_id += len(new)
        else:
            marks.append(_sample_mark(impurity, window, rng, class_id, next_id))
            next_id += 1
    if not good:
        weights = np.array([d.weight for d in config.defects])
        low, high = split_config.defects_per_image
        for _ in range(int(rng.integers(low, high + 1))):
            defect = config.defects[int(rng.choice(len(weights), p=weights / weights.sum()))]
            marks.append(_sample_mark(defect, window, rng, by_name[defect.name].id, next_id))
            next_id += 1
    return replace(spec, stains=tuple(stains), marks=tuple(marks))


def sample_lights(lights: list[LightConfig], rng: np.random.Generator) -> tuple[LightSpec, ...]:
    """The lights of one image: `count` draws of each configured light."""
    return tuple(
        LightSpec(
            type=light.type,
            azimuth_deg=sample_range(rng, light.azimuth_deg),
            elevation_deg=sample_range(rng, light.elevation_deg),
            distance_mm=sample_range(rng, light.distance_mm),
            size_mm=sample_range(rng, light.size_mm),
            power_w=sample_range(rng, light.power_w),
            temperature_k=sample_range(rng, light.temperature_k),
        )
        for light in lights
        for _ in range(int(rng.integers(light.count[0], light.count[1] + 1)))
    )


def _sample_material(config: SceneConfig, rng: np.random.Generator, index: int) -> MaterialSpec:
    surface = config.surface
    look = None
    if surface.looks:  # no draw without looks: older configs keep every later draw
        weights = np.array([x.weight for x in surface.looks])
        surface = look = surface.looks[int(rng.choice(len(weights), p=weights / weights.sum()))]
    # One factor along the low→high colour line: grey stays grey, brown stays brown.
    t = float(rng.random())
    color = [lo + t * (hi - lo) for lo, hi in zip(surface.color_low, surface.color_high, strict=True)]
    hue_shift = sample_range(rng, config.randomization.hue_jitter) * rng.choice([-1, 1])
    if hue_shift:
        h, s, v = colorsys.rgb_to_hsv(*color)
        color = list(colorsys.hsv_to_rgb((h + hue_shift) % 1.0, s, v))
    patterns = surface.patterns or [_default_pattern(surface.family)]
    pattern = str(patterns[int(rng.integers(len(patterns)))])
    material = MaterialSpec(
        family=surface.family,
        pattern=pattern,
        base_color=(float(color[0]), float(color[1]), float(color[2])),
        color_variation=sample_range(rng, surface.color_variation),
        scale_mm=sample_range(rng, surface.scale_mm),
        roughness=sample_range(rng, surface.roughness),
        bump_strength=sample_range(rng, surface.bump_strength),
        seed=int(rng.integers(0, 2**31 - 1)),
        metallic=sample_range(rng, surface.metallic),
        look=None if look is None else look.name,
    )
    if surface.grain is not None and pattern != "suede":  # a napped leather has no grain
        grain = surface.grain
        spec = GrainSpec(sample_range(rng, grain.contrast), sample_range(rng, grain.crease_width))
        material = replace(material, grain=spec)
    if surface.grinding is not None:  # on a stream of its own: no other draw moves
        g, own = surface.grinding, own_stream(config.seed, index, GRINDING_STREAM)
        spec = GrindingSpec(*(sample_range(own, bounds) for bounds in (g.marks, g.bands, g.lines, g.grain)))
        material = replace(material, grinding=spec)
    weave = surface.weave
    if weave is None:
        return material
    repeat = 2 if pattern == "plain" else int(rng.integers(weave.repeat[0], weave.repeat[1] + 1))
    spec = WeaveSpec(
        weft_ratio=sample_range(rng, weave.weft_ratio),
        repeat=repeat,
        direction=1 if weave.direction == "Z" else -1,
        weft_shade=sample_range(rng, weave.weft_shade),
        gap_shade=sample_range(rng, weave.gap_shade),
        mottle=sample_range(rng, weave.mottle),
    )
    return replace(material, weave=spec)


def _default_pattern(family: str) -> str:
    return {"leather": "grain", "textile": "plain", "metal": "brushed"}[family]


def jittered_centres(
    window: tuple[float, float, float, float], cell_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """One uniformly random point per grid cell of size G covering the window (jittered sampling)."""
    x0, y0, x1, y1 = window
    nx = max(1, math.ceil((x1 - x0) / cell_mm - 1e-9))  # tolerance: 1.9 mm / 1.9 mm is one cell
    ny = max(1, math.ceil((y1 - y0) / cell_mm - 1e-9))
    gy, gx = np.mgrid[0:ny, 0:nx]
    jitter = rng.random((ny, nx, 2))
    xs = x0 + (gx + jitter[..., 0]) * cell_mm
    ys = y0 + (gy + jitter[..., 1]) * cell_mm
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def sample_stains(
    impurity: ImpurityConfig,
    window: tuple[float, float, float, float],
    rng: np.random.Generator,
    class_id: int,
    first_id: int,
) -> list[StainSpec]:
    """Water stains at jittered-grid centres; density is set by the cell size G."""
    cell = sample_range(rng, impurity.cell_mm)
    centres = jittered_centres(window, cell, rng)
    return [
        StainSpec(
            instance_id=first_id + i,
            class_id=class_id,
            center_mm=(float(x), float(y)),
            radius_mm=sample_range(rng, impurity.radius_mm),
            noise_frequency=sample_range(rng, impurity.noise_frequency),
            amplitude_mm=sample_range(rng, impurity.amplitude_mm),
            gamma=sample_range(rng, impurity.gamma),
            alpha=sample_range(rng, impurity.alpha),
            heterogeneity=sample_range(rng, impurity.heterogeneity),
            rim_darkening=sample_range(rng, impurity.rim_darkening),
            noise_offset=(float(rng.uniform(0, 200)), float(rng.uniform(0, 200))),
        )
        for i, (x, y) in enumerate(centres)
    ]


def _sample_mark(
    item: DefectConfig | ImpurityConfig,
    window: tuple[float, float, float, float],
    rng: np.random.Generator,
    class_id: int,
    instance_id: int,
) -> MarkSpec:
    """Place one defect (or fingerprint, fuzz) inside the visible window."""
    x0, y0, x1, y1 = window
    if isinstance(item, DefectConfig):
        size = sample_range(rng, item.size_mm)
        width, depth = sample_range(rng, item.width_mm), sample_range(rng, item.depth_mm)
        reflectance, roughness = sample_range(rng, item.reflectance), sample_range(rng, item.roughness)
        angle = sample_range(rng, item.angle_deg)
    elif item.kind == "fuzz":  # a tuft of loose fibres lying on the surface
        size = sample_range(rng, item.radius_mm) * 2
        width = sample_range(rng, item.width_mm)
        depth, reflectance, roughness = width, sample_range(rng, item.alpha), 0.1
        angle = float(rng.uniform(0, 180))
    else:  # fingerprint: an oval of ridges that changes gloss and a little reflectance
        size = sample_range(rng, item.radius_mm) * 2
        width, depth = size * 0.7, 0.0
        reflectance, roughness = sample_range(rng, item.alpha), 0.15
        angle = float(rng.uniform(0, 180))
    margin = min(size / 2, (x1 - x0) / 3, (y1 - y0) / 3)
    centre = (
        float(rng.uniform(x0 + margin, x1 - margin)),
        float(rng.uniform(y0 + margin, y1 - margin)),
    )
    points = _mark_points(item.kind, centre, size, angle, window, rng)
    return MarkSpec(
        instance_id=instance_id,
        class_id=class_id,
        kind=item.kind,
        points_mm=points,
        size_mm=size,
        width_mm=width,
        depth_mm=depth,
        reflectance=reflectance,
        roughness=roughness,
        angle_deg=angle,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


LINEAR_KINDS = {"scratch", "crack", "cut", "crease", "snag", "fray"}


def _mark_points(
    kind: str,
    centre: tuple[float, float],
    size: float,
    angle_deg: float,
    window: tuple[float, float, float, float],
    rng: np.random.Generator,
) -> tuple[tuple[float, float], ...]:
    """The skeleton a defect is drawn around: a polyline for linear kinds, else the centre."""
    cx, cy = centre
    x0, y0, x1, y1 = window
    direction = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    normal = np.array([-direction[1], direction[0]])
    if kind in LINEAR_KINDS:
        steps = 12 if kind in ("crack", "fray") else 6
        t = np.linspace(-0.5, 0.5, steps + 1) * size
        wiggle = {"crack": 0.08, "fray": 0.1, "crease": 0.05, "scratch": 0.01}.get(kind, 0.0)
        offsets = np.cumsum(rng.normal(0, wiggle * size / math.sqrt(steps), steps + 1))
        offsets -= np.linspace(offsets[0], offsets[-1], steps + 1) * (kind == "scratch")
        pts = np.array(centre) + t[:, None] * direction + offsets[:, None] * normal
    elif kind == "missing_thread":  # a full-width (or full-height) strip along the weave
        horizontal = rng.random() < 0.5
        pts = np.array([[x0, cy], [x1, cy]] if horizontal else [[cx, y0], [cx, y1]])
    elif kind == "uneven":  # a band ground differently, across the whole width, often at an edge
        cy = float(rng.uniform(y0, y1))
        pts = np.array([[x0, cy], [x1, cy]])
    elif kind in ("edge_wear", "break"):  # anchored on a window edge
        side = int(rng.integers(4))
        edge_points = {0: (cx, y0), 1: (x1, cy), 2: (cx, y1), 3: (x0, cy)}
        pts = np.array([edge_points[side]])
    else:
        pts = np.array([centre])
    pts[:, 0] = pts[:, 0].clip(x0, x1)
    pts[:, 1] = pts[:, 1].clip(y0, y1)
    return tuple((float(x), float(y)) for x, y in pts)


def shard_range(config: SceneConfig, shard: int = 0, shards: int = 1) -> range:
    """Indices rendered by shard `shard` of `shards` (round robin keeps shards balanced); a
    range, so millions of images cost no memory up front."""
    if not 0 <= shard < shards:
        raise ConfigError(f"shard {shard} is not in 0..{shards - 1}")
    return range(shard, total_images(config), shards)


def shard_indices(config: SceneConfig, shard: int = 0, shards: int = 1) -> list[int]:
    """`shard_range` as a list, for small configs and tests."""
    return list(shard_range(config, shard, shards))


__all__ = [
    "SPLITS",
    "BurstSpec",
    "CameraSpec",
    "ClassSpec",
    "GeometrySpec",
    "LightSpec",
    "MarkSpec",
    "MaterialSpec",
    "RenderSpec",
    "SceneSpec",
    "StainSpec",
    "class_table",
    "jittered_centres",
    "sample_scene",
    "shard_indices",
    "shard_range",
    "split_of",
    "total_images",
]
