"""Validated scene configs: the schema of scenes/*.yaml.

A scene config gives *ranges*; `synth.scene` samples one concrete `SceneSpec` per image from
them. Every user mistake is reported with the field path, the bad value and what is allowed,
all at once, never as a traceback.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from synth.errors import ConfigError, validation_problems

if TYPE_CHECKING:
    import numpy as np

SPLITS = ("train", "val", "test")

Family = Literal["leather", "textile", "metal"]
DefectKind = Literal[
    "scratch",
    "crack",
    "cut",
    "crease",
    "dent",
    "bump",
    "hole",
    "pit",
    "edge_wear",
    "discoloration",
    "snag",
    "missing_thread",
    "pilling",
    "break",
    "fray",
    "uneven",
]
ImpurityKind = Literal["water_stain", "fingerprint", "fuzz"]


def sample_range(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw from a `[min, max]` range of a config; a degenerate range draws nothing, so
    pinning a range leaves every later draw of the same generator unchanged."""
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def own_stream(seed: int, index: int, *stream: int) -> np.random.Generator:
    """The random stream of one optional part of image `index` (sensor, appearance, grinding, a
    burst set-up): adding or changing that part moves none of the scene's other draws."""
    import numpy  # at run time only: the config module is imported by every --help

    return numpy.random.default_rng([seed, index, *stream])


@dataclass(frozen=True)
class RangeBounds:
    """The limits a `[min, max]` range field must lie in; `synth calibrate` searches inside them."""

    lo: float
    hi: float


def _range(lo: float, hi: float):
    """A `[min, max]` pair inside `[lo, hi]` with min ≤ max."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        a, b = value
        if not (lo <= a <= b <= hi):
            raise ValueError(f"expected [min, max] with {lo} <= min <= max <= {hi}, got [{a}, {b}]")
        return value

    return Annotated[tuple[float, float], AfterValidator(check), RangeBounds(lo, hi)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after configs were written: `SceneConfig.dump` leaves them out while they
    # hold their default, so older configs keep their hash and their datasets.
    ADDED: ClassVar[tuple[str, ...]] = ()

    def dump(self) -> dict:
        """The validated content as JSON data, added fields at their default left out."""
        return _prune(self, self.model_dump(mode="json"))


def _prune(model: BaseModel, data: dict) -> dict:
    for name in getattr(model, "ADDED", ()):
        if getattr(model, name) == type(model).model_fields[name].get_default(call_default_factory=True):
            del data[name]
    for name in list(data):
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _prune(value, data[name])
        elif isinstance(value, list | tuple):
            for item, item_data in zip(value, data[name], strict=True):
                if isinstance(item, BaseModel):
                    _prune(item, item_data)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _prune(item, data[name][key])
    return data


Unit = _range(0.0, 1.0)
Rgb = Annotated[tuple[float, float, float], Field()]


class WeaveConfig(_Model):
    """A textile's yarn geometry beyond one thread pitch, in both views (scale_mm is the warp
    pitch). Without it the raster view draws its older sine weave; with it both views draw
    rounded yarns crossing over and under by the weave."""

    weft_ratio: _range(0.2, 5.0) = Field(
        (1.0, 1.0), description="weft pitch / warp pitch (warp runs along image y, weft along x)"
    )
    repeat: tuple[Annotated[int, Field(ge=3, le=8)], Annotated[int, Field(ge=3, le=8)]] = Field(
        (3, 3), description="twill: threads per repeat, the warp floats over all but one"
    )
    direction: Literal["Z", "S"] = Field(
        "Z", description="twill diagonal as seen: Z rises to the right (/), S to the left (\\)"
    )
    weft_shade: _range(0.0, 2.0) = Field(
        (0.9, 0.9), description="brightness of a weft on top relative to a warp on top"
    )
    gap_shade: Unit = Field((0.25, 0.25), description="brightness at a yarn's edge relative to its crown")
    mottle: Unit = Field((0.0, 0.0), description="tone variation over about 1 mm (uneven yarn)")

    @model_validator(mode="after")
    def _check(self) -> WeaveConfig:
        if self.repeat[0] > self.repeat[1]:
            raise ValueError(f"repeat: expected [min, max] with min <= max, got {list(self.repeat)}")
        return self


class GrainConfig(_Model):
    """A leather's grain in both views: warped Voronoi cells of scale_mm with rounded tops,
    creases between them and a finer wrinkle network. Without it the raster view draws its
    older noise grain; the Blender view draws this grain at contrast 1, crease width 0.05."""

    contrast: Unit = Field(
        (1.0, 1.0), description="how much creases, wrinkles and pores darken the albedo (0: not at all)"
    )
    crease_width: _range(0.005, 0.5) = Field((0.05, 0.05), description="crease width, share of a cell")


class GrindingConfig(_Model):
    """Ground or brushed metal's tool marks in both views, each term's contrast relative to the
    Blender view's older graph (1 = as drawn before this section existed). Without it the raster
    view draws its older faint streaks; real ground ferrite shows marks, bands and sharp lines far
    stronger than those (grey std ~30 against ~2 of the older raster tiles at 128 px), and
    an isotropic grain that keeps the marks from looking combed."""

    marks: _range(0.0, 4.0) = Field((1.0, 1.0), description="fine grinding marks (scale_mm apart)")
    bands: _range(0.0, 4.0) = Field((1.0, 1.0), description="slow brightness bands along the marks")
    lines: _range(0.0, 4.0) = Field((1.0, 1.0), description="sparse sharp bright streaks and dark grooves")
    grain: _range(0.0, 4.0) = Field((1.0, 1.0), description="ground: the isotropic sintered grain")


class PhotoConfig(_Model):
    """Real good photographs as the surface's base appearance, in the raster view (the Cycles
    view refuses it). Each image shows a random crop of a random photo of `source`: a canonical
    dataset (its good train images) or a folder (all its images); in an experiment, `real` means
    the experiment's imported real dataset. A render pixel shows `scale` photo pixels: the crop
    is camera.resolution x scale photo pixels stretched over the view, with scale drawn in
    [min, max] but at most what the photo holds, so every photo must hold the view at the
    minimum scale. The crop is mirrored left-right or turned by quarter turns at random (those
    the photo holds), and its linear RGB is multiplied by `gain`. It replaces the base colour,
    the texture and the texture's relief; the scene's defects and impurities, lit by its
    lights, apply on top, and the labels are those of the same scene without the photo. Grey
    photos are refused for a colour scene (coloured surface or hue jitter, no grey sensor)."""

    source: str = Field(
        min_length=1, description="a dataset or a folder of good photos; real: an experiment's"
    )
    scale: _range(0.25, 4.0) = Field((0.9, 1.1), description="photo pixels per render pixel")
    gain: _range(0.05, 20.0) = Field((0.9, 1.1), description="brightness factor on the photo's linear RGB")
    flips: bool = Field(True, description="mirror half of the crops left-right")
    turns: bool = Field(True, description="turn crops by random quarter turns the photo holds")


class SurfaceConfig(_Model):
    ADDED = ("weave", "looks", "grain", "grinding", "photo")

    family: Family
    color_low: Rgb = Field(description="one end of the base-colour line, linear RGB in [0, 1]")
    color_high: Rgb = Field(description="the other end; each image samples a point between them")
    color_variation: Unit = (0.05, 0.15)
    scale_mm: _range(0.05, 50.0) = Field(
        (1.0, 2.0), description="grain cell size, thread pitch or grinding-mark spacing"
    )
    roughness: Unit = (0.3, 0.6)
    bump_strength: _range(0.0, 5.0) = (0.2, 0.6)
    metallic: Unit = Field((0.0, 0.0), description="1 = bare metal, 0 = dielectric (paint, ferrite)")
    patterns: list[str] = Field(
        default_factory=list,
        description="leather: grain, embossed, suede; textile: plain, twill; metal: brushed, ground",
    )
    weave: WeaveConfig | None = None
    grain: GrainConfig | None = None
    grinding: GrindingConfig | None = None
    photo: PhotoConfig | None = Field(
        None, description="real good photos as the base appearance, defects on top (raster view)"
    )
    looks: list[LookConfig] | None = Field(
        None,
        description="alternative appearances (finishes, fabrics), one drawn per image by weight; "
        "each look overrides some of the fields above and inherits the rest",
    )

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """A look is the surface with the look's own fields merged over the surface's."""
        if isinstance(data, dict) and isinstance(data.get("looks"), list):
            base = {k: v for k, v in data.items() if k != "looks"}
            looks = [deep_merge(base, look) if isinstance(look, dict) else look for look in data["looks"]]
            data = {**data, "looks": looks}
        return data

    @model_validator(mode="after")
    def _check(self) -> SurfaceConfig:
        for name in ("color_low", "color_high"):
            if not all(0.0 <= c <= 1.0 for c in getattr(self, name)):
                raise ValueError(f"{name}: each channel must lie in [0, 1]")
        if any(lo > hi for lo, hi in zip(self.color_low, self.color_high, strict=True)):
            raise ValueError("color_low must not exceed color_high in any channel")
        allowed = PATTERNS[self.family]
        bad = [p for p in self.patterns if p not in allowed]
        if bad:
            raise ValueError(f"patterns {bad} unknown for {self.family}; allowed: {list(allowed)}")
        if self.weave is not None and self.family != "textile":
            raise ValueError(f"weave: only a textile surface has a weave, not {self.family}")
        if self.grain is not None and self.family != "leather":
            raise ValueError(f"grain: only a leather surface has this grain, not {self.family}")
        if self.grinding is not None and self.family != "metal":
            raise ValueError(f"grinding: only a metal surface has grinding marks, not {self.family}")
        if self.looks is not None:
            names = [look.name for look in self.looks]
            if not names or len(set(names)) < len(names):
                raise ValueError(f"looks: expected at least one look, with unique names, got {names}")
        return self


class LookConfig(SurfaceConfig):
    """One appearance of a surface: every surface field, each defaulting to the surface's."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    weight: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _single(self) -> LookConfig:
        if self.looks is not None:
            raise ValueError("a look cannot have looks of its own")
        return self


SurfaceConfig.model_rebuild()

PATTERNS: dict[str, tuple[str, ...]] = {
    "leather": ("grain", "embossed", "suede"),
    "textile": ("plain", "twill"),
    "metal": ("brushed", "ground"),
}


class GeometryConfig(_Model):
    shape: Literal["flat", "curved_tile"] = "flat"
    size_mm: tuple[Annotated[float, Field(gt=0, le=2000)], Annotated[float, Field(gt=0, le=2000)]]
    bend_deg: _range(0.0, 120.0) = Field(
        (0.0, 0.0), description="arc angle of a curved tile about its vertical axis"
    )


class CameraConfig(_Model):
    resolution: tuple[Annotated[int, Field(ge=16, le=8192)], Annotated[int, Field(ge=16, le=8192)]]
    height_mm: _range(1.0, 10000.0)
    focal_mm: Annotated[float, Field(gt=0, le=1000)] = 50.0
    sensor_mm: Annotated[float, Field(gt=0, le=100)] = 36.0
    orthographic: bool = False


class LightConfig(_Model):
    type: Literal["area", "bar", "ring"]
    count: tuple[Annotated[int, Field(ge=0, le=8)], Annotated[int, Field(ge=0, le=8)]] = (1, 1)
    elevation_deg: _range(1.0, 90.0) = (30.0, 70.0)
    azimuth_deg: _range(-360.0, 720.0) = (0.0, 360.0)
    distance_mm: _range(1.0, 10000.0) = (150.0, 250.0)
    size_mm: _range(1.0, 5000.0) = (50.0, 150.0)
    power_w: _range(0.0, 10000.0) = (5.0, 20.0)
    temperature_k: _range(1000.0, 20000.0) = (4500.0, 6500.0)

    @model_validator(mode="after")
    def _check(self) -> LightConfig:
        if self.count[0] > self.count[1]:
            raise ValueError(f"count: expected [min, max] with min <= max, got {list(self.count)}")
        return self


# Views of a burst that are not set-up names (synth.dataset.Sample.image).
FUSED_VIEWS = ("max", "mean", "channels")


class BurstConfig(_Model):
    """One light set-up of a burst: the sample rendered again with these lights instead of the
    scene's, same geometry and labels (raking from 0 deg, from 90 deg, diffuse ...)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]*$")
    lights: list[LightConfig] = Field(min_length=1)


class ImpurityConfig(_Model):
    ADDED = ("width_mm",)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: ImpurityKind
    probability: Annotated[float, Field(ge=0, le=1)] = 0.5
    cell_mm: _range(0.5, 1000.0) = Field((8.0, 14.0), description="jitter cell size G")
    radius_mm: _range(0.05, 500.0) = (1.5, 3.0)
    noise_frequency: _range(0.0, 100.0) = Field((0.3, 0.8), description="Perlin f, per mm")
    amplitude_mm: _range(0.0, 100.0) = Field((0.2, 0.6), description="Perlin amplitude A")
    gamma: _range(0.05, 20.0) = Field((1.5, 3.0), description="decay speed γ")
    alpha: _range(-1.0, 1.0) = Field((-0.12, -0.04), description="reflectance change α")
    heterogeneity: _range(0.0, 1.0) = (0.0, 0.0)
    rim_darkening: _range(0.0, 1.0) = (0.0, 0.0)
    width_mm: _range(0.005, 5.0) = Field((0.03, 0.06), description="fuzz: width of a loose fibre")

    @model_validator(mode="after")
    def _check(self) -> ImpurityConfig:
        reach = self.radius_mm[1] + self.amplitude_mm[1]
        if self.kind == "water_stain" and reach > self.cell_mm[0]:
            raise ValueError(
                f"radius_mm max + amplitude_mm max = {reach:g} exceeds cell_mm min = "
                f"{self.cell_mm[0]:g}: a stain must stay within its neighbouring cells"
            )
        return self


class DefectConfig(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: DefectKind
    weight: Annotated[float, Field(gt=0)] = 1.0
    size_mm: _range(0.01, 2000.0) = Field((2.0, 8.0), description="length or diameter")
    width_mm: _range(0.005, 500.0) = (0.1, 0.4)
    depth_mm: _range(-50.0, 50.0) = Field((0.02, 0.08), description="groove/pit depth")
    reflectance: _range(-1.0, 1.0) = Field((-0.1, -0.02), description="albedo change")
    roughness: _range(-1.0, 1.0) = (0.0, 0.1)
    angle_deg: _range(0.0, 180.0) = Field(
        (0.0, 180.0), description="direction of a linear defect from the image x axis (90 = along y)"
    )


class RenderConfig(_Model):
    """Cycles' sampling: `samples` paths per pixel, then OpenImageDenoise unless `denoise` is off.
    With `adaptive_threshold` Cycles stops sampling a pixel once its noise is below it (at most
    `samples`); left out, every pixel gets all the samples. The raster view ignores all three."""

    ADDED = ("adaptive_threshold",)

    samples: Annotated[int, Field(ge=1, le=65536)] = 16
    denoise: bool = True
    adaptive_threshold: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="Cycles adaptive sampling's noise threshold (e.g. 0.01); none: off"
    )
    exposure: _range(-10.0, 10.0) = (0.0, 0.0)
    texels_per_px: Annotated[int, Field(ge=1, le=4)] = 2


class SplitConfig(_Model):
    count: Annotated[int, Field(ge=0, le=10_000_000)]
    good_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    defects_per_image: tuple[Annotated[int, Field(ge=1, le=50)], Annotated[int, Field(ge=1, le=50)]] = (
        1,
        2,
    )


class RandomizationConfig(_Model):
    """Domain randomisation on top of the material ranges (all off = 0)."""

    hue_jitter: _range(0.0, 0.5) = (0.0, 0.0)
    camera_tilt_deg: _range(0.0, 30.0) = (0.0, 0.0)
    camera_roll_deg: _range(0.0, 180.0) = (0.0, 0.0)


Quality = Annotated[int, Field(ge=1, le=100)]


class SensorConfig(_Model):
    """The camera after the optics: applied identically to every view's render.

    Ranges are sampled per image. Order: exposure gain, vignetting, defocus blur, grey
    conversion, shot + read noise, camera response (gamma), 8-bit quantisation, JPEG.
    """

    exposure_ev: _range(-3.0, 3.0) = (0.0, 0.0)
    vignetting: _range(0.0, 1.0) = Field((0.0, 0.0), description="brightness lost at the corners")
    blur_px: _range(0.0, 10.0) = Field((0.0, 0.0), description="Gaussian PSF sigma in pixels")
    grey: bool = Field(False, description="monochrome camera: luminance on every channel")
    shot_noise: _range(0.0, 0.2) = Field(
        (0.0, 0.0), description="std of signal-dependent noise at full scale (std = k * sqrt(value))"
    )
    read_noise: _range(0.0, 0.2) = Field((0.0, 0.0), description="std of signal-independent noise")
    gamma: _range(0.2, 5.0) = Field((1.0, 1.0), description="response: value ** (1 / gamma)")
    jpeg_quality: tuple[Annotated[int, Field(ge=1, le=100)], Annotated[int, Field(ge=1, le=100)]] | None = (
        Field(None, description="JPEG round trip at a quality in this range; none: lossless")
    )

    @model_validator(mode="after")
    def _check(self) -> SensorConfig:
        if self.jpeg_quality is not None and self.jpeg_quality[0] > self.jpeg_quality[1]:
            raise ValueError(
                f"jpeg_quality: expected [min, max] with min <= max, got {list(self.jpeg_quality)}"
            )
        return self


class AppearanceConfig(_Model):
    """Match renders to real photographs after the sensor, labels untouched.

    `reference` is a canonical dataset (its good train images) or a folder of good images;
    in an experiment, `real` means the experiment's imported real dataset. `fda` swaps the
    low-frequency amplitude spectrum (a centred square of half-size beta x the image size) for a
    reference image's, keeping the render's phase; `histogram` matches each channel's histogram.
    """

    reference: str = Field(min_length=1)
    method: Literal["fda", "histogram"] = "fda"
    beta: _range(0.0, 0.5) = (0.01, 0.01)
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0


class SceneConfig(_Model):
    ADDED = ("sensor", "appearance", "bursts")

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    surface: SurfaceConfig
    geometry: GeometryConfig
    camera: CameraConfig
    lights: list[LightConfig] = Field(min_length=1)
    impurities: list[ImpurityConfig] = Field(default_factory=list)
    defects: list[DefectConfig] = Field(min_length=1)
    render: RenderConfig = RenderConfig()
    randomization: RandomizationConfig = RandomizationConfig()
    sensor: SensorConfig | None = None
    appearance: AppearanceConfig | None = None
    bursts: list[BurstConfig] | None = Field(
        None,
        description="light set-ups: each sample is rendered once per set-up, with one set of labels",
    )
    splits: dict[Literal["train", "val", "test"], SplitConfig]

    @model_validator(mode="after")
    def _check(self) -> SceneConfig:
        names = [d.name for d in self.defects] + [i.name for i in self.impurities]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"class names must be unique, repeated: {duplicated}")
        if len(names) > 254:
            raise ValueError("at most 254 classes fit a uint8 class mask")
        if self.bursts is not None:
            setups = [b.name for b in self.bursts]
            if not setups or len(set(setups)) < len(setups) or set(setups) & set(FUSED_VIEWS):
                raise ValueError(
                    f"bursts: expected at least one set-up, with unique names other than "
                    f"{list(FUSED_VIEWS)}, got {setups}"
                )
        return self

    def digest(self) -> str:
        """Hash of the validated content: two configs that sample alike hash alike."""
        text = json.dumps(self.dump(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def split_counts(self) -> dict[str, int]:
        return {s: self.splits[s].count if s in self.splits else 0 for s in SPLITS}


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"  - {problem}" for problem in validation_problems(error, schema="scenes/*.yaml")]
    return "\n".join([f"{source}: {error.error_count()} problem(s) in the scene config", *lines])


def parse_config(data: object, source: str = "<config>") -> SceneConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return SceneConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None


def load_config(path: str | Path, overrides: dict | None = None) -> SceneConfig:
    """Load and validate a scene YAML; `overrides` are deep-merged on top (for experiments)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read scene config ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if overrides and isinstance(data, dict):
        data = deep_merge(data, overrides)
    return parse_config(data, str(path))


def deep_merge(base: dict, update: dict) -> dict:
    """Return `base` with `update` merged in, recursing into nested mappings."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
