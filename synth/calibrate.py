"""`synth calibrate`: fit a scene's numeric ranges to real good images.

Each `[min, max]` range of the scene becomes a centre (and, unless widths are fixed, a width)
that Optuna searches. A trial renders a small batch of good images in memory (raster by
default), takes their PatchCore patch features and scores them against the cached features of
the real good images: MMD² by default (the gap score of `evaluate gap`), or the coverage ratio.
The study lives in an Optuna storage (SQLite by default), so a killed calibration resumes
where it stopped and several processes can work on one study (Optuna's own distributed mode).
A resumed run's sampler starts again from its seed and the stored trials, so its later trials
are not the ones an uninterrupted run would have drawn (the same search, another sequence).

The gap score is measured by `evaluate.gap`; it is imported inside the functions that use it,
so `synth --help` stays fast and bpy-free renders stay torch-free.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import numpy as np
import yaml
from pydantic import BaseModel, Field

from synth.config import RangeBounds, SceneConfig, load_config, parse_config
from synth.errors import ConfigError, DataError
from synth.outputs import check_output
from synth.writers import atomic_write_bytes, atomic_write_text
from train.settings import Settings

if TYPE_CHECKING:
    import optuna

    from evaluate.gap import PatchSet, RealReference
    from train.patchcore import PatchCoreConfig

Objective = Literal["mmd2", "coverage"]
SamplerName = Literal["tpe", "cmaes"]

# Fitted by default: the look of the bare surface under its light and camera. Defects are not in
# good images, and impurities are what the user chooses to show, not what the surface looks like.
DEFAULT_SECTIONS = (
    "surface",
    "geometry",
    "camera",
    "lights",
    "render",
    "randomization",
    "sensor",
    "appearance",
)
# What the raster view does not draw (synth/raster.py: distant white lights, no metal, flat plate).
RASTER_IGNORES = (
    "surface.metallic",
    "geometry.bend_deg",
    "lights.*.distance_mm",
    "lights.*.size_mm",
    "lights.*.temperature_k",
    "randomization.camera_tilt_deg",
    "randomization.camera_roll_deg",
)
STUDY_NAME = "defectsynth-calibrate"
SHEET_IMAGES = 4  # images per row of the contact sheet


@dataclass(frozen=True)
class Parameter:
    """One range of the scene, searched as a centre in [low, high] and a width in [0, max_width]."""

    path: str  # dotted, list entries by index: "lights.0.elevation_deg"
    bounds: tuple[float, float]  # the field's own limits
    shipped: tuple[float, float]
    low: float
    high: float
    max_width: float

    def suggest(self, trial: optuna.Trial, fit_width: bool) -> tuple[float, float]:
        centre = trial.suggest_float(self.path, self.low, self.high)
        width = self.shipped[1] - self.shipped[0]
        if fit_width and self.max_width > 0:
            width = trial.suggest_float(f"{self.path}.width", 0.0, self.max_width)
        return self.clip(centre, width)

    def clip(self, centre: float, width: float) -> tuple[float, float]:
        lo, hi = self.bounds
        return (
            round(min(max(centre - width / 2, lo), hi), 4),
            round(min(max(centre + width / 2, lo), hi), 4),
        )

    def shipped_params(self, fit_width: bool) -> dict[str, float]:
        """The trial parameters that reproduce the shipped range (for the first trial)."""
        a, b = self.shipped
        params = {self.path: min(max((a + b) / 2, self.low), self.high)}
        if fit_width and self.max_width > 0:
            params[f"{self.path}.width"] = b - a
        return params


class CalibrationSettings(Settings):
    """What one trial renders and how it is scored; the same settings score alike."""

    what: ClassVar[str] = "calibration"

    trials: int = Field(50, ge=1)
    images: int = Field(16, ge=2)  # good images rendered per trial
    resolution: int = Field(128, ge=32)  # square render and backbone input size
    renderer: Literal["raster", "cycles"] = "raster"
    objective: Objective = "mmd2"
    sampler: SamplerName = "tpe"
    fit_width: bool = True
    seed: int = 0
    samples: int = Field(1000, ge=2)  # patches per side in one MMD² subset (as `evaluate gap`)
    subsets: int = Field(10, ge=1)
    coreset_size: int = Field(1024, ge=2)


# --- the search space ----------------------------------------------------------------------


def _model_at(config: SceneConfig, path: Sequence[str]) -> tuple[type[BaseModel], BaseModel | None]:
    """The model class (and instance, None for an absent section) that holds the field at the
    end of `path`."""
    model: type[BaseModel] = type(config)
    value: Any = config
    for part in path[:-1]:
        if isinstance(value, list | tuple):
            if not part.isdigit() or int(part) >= len(value):
                raise KeyError(part)
            value = value[int(part)]
            model = type(value)
            continue
        if part not in model.model_fields:
            raise KeyError(part)
        annotation = model.model_fields[part].annotation
        value = getattr(value, part) if value is not None else None
        inner = [
            a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if inner:
            model = inner[0]
        elif not isinstance(value, list | tuple):
            raise KeyError(part)
    return model, value


def range_bounds(config: SceneConfig, path: str) -> RangeBounds:
    """The limits of the `[min, max]` range field at a dotted path, or ConfigError."""
    parts = path.split(".")
    try:
        model, _ = _model_at(config, parts)
        field = model.model_fields[parts[-1]]
    except KeyError:
        field = None
    bounds = [m for m in field.metadata if isinstance(m, RangeBounds)] if field else []
    if not bounds:
        what = "is not a range calibration fits" if field else "is not a [min, max] range of the scene"
        raise ConfigError(
            f"--params: {path!r} {what} (it fits ranges of real numbers, e.g. surface.roughness, "
            "lights.0.elevation_deg, sensor.blur_px; not whole-number ones such as sensor.jpeg_quality; "
            "see scenes/*.yaml)"
        )
    return bounds[0]


def current_range(config: SceneConfig, path: str) -> tuple[float, float]:
    """The range's value in the validated config (its default inside an absent section)."""
    parts = path.split(".")
    model, value = _model_at(config, parts)
    if value is None:
        default = model.model_fields[parts[-1]].default
        return float(default[0]), float(default[1])
    lo, hi = getattr(value, parts[-1])
    return float(lo), float(hi)


def spelled_ranges(data: Any, config: SceneConfig, prefix: str = "") -> list[str]:
    """Dotted paths of the ranges the scene file spells out (not the defaults it leaves)."""
    found = []
    items = enumerate(data) if isinstance(data, list) else data.items() if isinstance(data, dict) else []
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, dict | list) and not _is_pair(value):
            found += spelled_ranges(value, config, path + ".")
        elif _is_pair(value):
            try:
                range_bounds(config, path)
            except ConfigError:
                continue
            found.append(path)
    return found


def _is_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value)


def _ignored(path: str, renderer: str) -> bool:
    if renderer != "raster":
        return False
    parts = path.split(".")
    return any(
        len(rule.split(".")) == len(parts)
        and all(r in ("*", p) for r, p in zip(rule.split("."), parts, strict=True))
        for rule in RASTER_IGNORES
    )


def search_space(
    scene: Path, data: dict, config: SceneConfig, params: Sequence[str] | None, renderer: str
) -> list[Parameter]:
    """The parameters to fit: by default every range the scene spells out with min < max in the
    default sections; with `params`, exactly those (`name` or `name=low:high` for the centre)."""
    if params:
        if not all(p.strip() for p in params):
            raise ConfigError(f"--params {','.join(params)!r}: an empty item (a comma too many)")
        chosen = [_parse_param(p) for p in params]
        paths = [path for path, _ in chosen]
        twice = sorted({path for path in paths if paths.count(path) > 1})
        if twice:
            raise ConfigError(f"--params: {', '.join(twice)} given more than once")
        for path, _ in chosen:
            range_bounds(config, path)  # unknown names fail here, with the name
            if _ignored(path, renderer):
                raise ConfigError(
                    f"--params: {path} has no effect in the {renderer} renderer; use --renderer cycles"
                )
    else:
        chosen = [
            (path, None)
            for path in spelled_ranges(data, config)
            if path.split(".")[0] in DEFAULT_SECTIONS
            and not _ignored(path, renderer)
            and current_range(config, path)[1] > current_range(config, path)[0]
        ]
    if not chosen:
        raise ConfigError(
            f"{scene}: no numeric ranges to fit (every range in {', '.join(DEFAULT_SECTIONS)} is fixed "
            "at min = max or has no effect in this renderer); name ranges to fit with --params"
        )
    return [_parameter(config, path, centre) for path, centre in chosen]


def _parse_param(text: str) -> tuple[str, tuple[float, float] | None]:
    path, _, span = text.strip().partition("=")
    if not span:
        return path, None
    try:
        low, high = (float(v) for v in span.split(":"))
    except ValueError:
        raise ConfigError(f"--params: expected NAME or NAME=LOW:HIGH, got {text!r}") from None
    if not low <= high:
        raise ConfigError(f"--params: {path}: LOW must not exceed HIGH, got {low}:{high}")
    return path, (low, high)


def _parameter(config: SceneConfig, path: str, centre: tuple[float, float] | None) -> Parameter:
    """Search the centre within the shipped centre ± max(width, half its size) (10 % of the
    field's span for a value at 0), inside the field's limits; the width from 0 to twice the
    shipped width (to the centre's reach for a fixed value)."""
    bounds = range_bounds(config, path)
    a, b = current_range(config, path)
    mid, width = (a + b) / 2, b - a
    reach = max(width, abs(mid) / 2) or 0.1 * (bounds.hi - bounds.lo)
    low, high = centre or (max(bounds.lo, mid - reach), min(bounds.hi, mid + reach))
    if not (bounds.lo <= low <= high <= bounds.hi):
        raise ConfigError(
            f"--params: {path}: the centre's span {low}:{high} leaves the field's [{bounds.lo}, {bounds.hi}]"
        )
    return Parameter(path, (bounds.lo, bounds.hi), (a, b), low, high, 2 * width if width > 0 else reach)


def with_ranges(data: dict, values: dict[str, tuple[float, float]]) -> dict:
    """A copy of the scene document with the ranges set (sections created where absent)."""
    out = json.loads(json.dumps(data))
    for path, (lo, hi) in values.items():
        node: Any = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[parts[-1]] = [lo, hi]
    return out


# --- one trial ------------------------------------------------------------------------------


def trial_config(data: dict, settings: CalibrationSettings, source: str) -> SceneConfig:
    """The scene as a trial renders it: `images` good train images at the trial resolution."""
    trial = json.loads(json.dumps(data))
    trial.setdefault("camera", {})["resolution"] = [settings.resolution, settings.resolution]
    trial["splits"] = {"train": {"count": settings.images, "good_fraction": 1.0}}
    return parse_config(trial, source)


def render_good(config: SceneConfig, renderer: str) -> list[np.ndarray]:
    """The config's images as the dataset would store them, held in memory."""
    from synth.layers import build_maps
    from synth.render import as_recorded, make_renderer
    from synth.scene import sample_scene, total_images

    view = make_renderer(renderer)  # type: ignore[arg-type]
    images = []
    for index in range(total_images(config)):
        spec = sample_scene(config, index)
        images.append(as_recorded(view.render(spec, build_maps(spec)).rgb, spec))
    return images


class Scorer:
    """Scores renders against the real good images, whose features are computed once."""

    def __init__(self, real: PatchSet, config: PatchCoreConfig, settings: CalibrationSettings) -> None:
        self.real, self.config, self.settings = real, config, settings
        self._reference: RealReference | None = None

    def features(self, images: list[np.ndarray], desc: str) -> PatchSet:
        from evaluate.gap import image_patches

        names = [Path(f"{desc}_{i:03d}.png") for i in range(len(images))]
        return image_patches(images, names, self.config, desc, progress=False)

    def score(self, images: list[np.ndarray]) -> dict[str, float]:
        """MMD² always; the coverage ratio when it is the objective (it costs a coreset)."""
        from evaluate.gap import coverage, mmd2_subsets, real_reference

        s = self.settings
        synthetic = self.features(images, "trial")
        mean, std = mmd2_subsets(synthetic.patches(), self.real.patches(), s.samples, s.subsets, s.seed)
        scores = {"mmd2": mean, "mmd2_std": std}
        if s.objective == "coverage":
            if self._reference is None:
                self._reference = real_reference(self.real, s.coreset_size, s.seed, progress=False)
            cov = coverage(synthetic, self.real, s.coreset_size, s.seed, self._reference, progress=False)
            scores["coverage"] = cov.ratio
        return scores


def real_patches(real: Path, config: PatchCoreConfig, cache: Path) -> PatchSet:
    """Features of the real good train images, cached beside the study by what they depend on."""
    from evaluate.gap import GapSettings, PatchSet, gap_images, load_patches

    items = gap_images(real)
    listing = [(str(p), p.stat().st_size) for p, _ in items]
    digest = hashlib.sha256(json.dumps([listing, config.to_dict()], default=str).encode()).hexdigest()[:12]
    path = cache / f"real_features-{digest}.npz"
    if path.is_file():
        stored = np.load(path)
        return PatchSet([p for p, _ in items], stored["features"], stored["usable"], tuple(stored["grid"]))
    patches = load_patches(real, config, GapSettings(), "real")
    buffer = io.BytesIO()
    np.savez(buffer, features=patches.features, usable=patches.usable, grid=np.array(patches.grid))
    atomic_write_bytes(path, buffer.getvalue())
    return patches


# --- the study ------------------------------------------------------------------------------


def _storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats: a trial whose process was killed is failed (and its
    parameters retried) when the next process starts, instead of blocking the study."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=30,
            grace_period=90,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
        )
    except Exception as error:  # SQLAlchemy and Optuna raise many kinds for a bad URL or file
        raise ConfigError(f"--storage {url}: cannot open it as an Optuna storage ({error})") from None


@contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """One process at a time creates (or opens) a SQLite study: two calibrations started
    together on one file would both create its tables, and the second would fail. A server
    storage (postgresql://...) serialises this itself."""
    if not url.startswith("sqlite:///"):
        yield
        return
    lock = Path(f"{url.removeprefix('sqlite:///')}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _sampler(settings: CalibrationSettings) -> optuna.samplers.BaseSampler:
    import optuna

    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=settings.seed, warn_independent_sampling=False)
    # A fifth of the budget (3 to 10 trials) is random start-up before TPE models the rest.
    startup = max(3, min(10, settings.trials // 5))
    return optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, n_startup_trials=startup)


def open_study(url: str, identity: dict[str, Any], settings: CalibrationSettings) -> optuna.Study:
    """Create the study, or reopen it when it was made for the same scene, real images, search
    space and settings; a storage made for anything else is refused."""
    import optuna

    with _creation_lock(url):
        study = optuna.create_study(
            storage=_storage(url),
            study_name=STUDY_NAME,
            direction="minimize",
            sampler=_sampler(settings),
            load_if_exists=True,
        )
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        differ = sorted(k for k in identity if stored.get(k) != identity[k])
        raise ConfigError(
            f"--storage {url}: its study was made for another calibration (differs in: {', '.join(differ)}; "
            f"stored scene {stored.get('scene_name')!r} {stored.get('scene_digest')}); use another --storage "
            "or delete the file to start again"
        )
    return study


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


@dataclass
class CalibrationResult:
    scene: Path
    out: Path
    report: Path
    best_value: float
    shipped_value: float
    trials: int
    best: dict[str, tuple[float, float]]
    seconds_per_trial: float


def calibrate(
    scene: Path,
    real: Path,
    out: Path,
    report_dir: Path,
    storage: str | None = None,
    params: Sequence[str] | None = None,
    settings: CalibrationSettings | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> CalibrationResult:
    """Run (or resume) the study until it holds `settings.trials` completed trials, then write
    the calibrated scene (validated) and the report."""
    import optuna

    from train.patchcore import PatchCoreConfig

    settings = settings or CalibrationSettings()
    check_output(out, folder=False, inputs=(scene, real))
    check_output(report_dir, folder=True)
    data, config = _load(scene)
    space = search_space(scene, data, config, params, settings.renderer)
    trial_config(data, settings, str(scene))  # a scene that a trial cannot render fails before any work
    shipped = {p.path: p.shipped for p in space}
    try:  # and so does a range that the scene cannot take (e.g. in a section it lacks)
        trial_config(with_ranges(data, shipped), settings, str(scene))
    except ConfigError as error:
        raise ConfigError(
            f"--params {','.join(shipped)}: {scene} cannot take these ranges ({error})"
        ) from None
    patch_config = PatchCoreConfig(image_size=(settings.resolution, settings.resolution), device=device)
    real_set = real_patches(real, patch_config, report_dir)
    if real_set.usable.sum() < 2:
        raise DataError(f"{real}: too few usable real patches to score against")
    identity = {
        "scene_name": config.name,
        "scene_digest": config.digest(),
        "real": str(real.resolve()),
        "real_images": len(real_set.paths),
        "space": [asdict(p) for p in space],
        "settings": settings.model_dump(exclude={"trials"}),
    }
    identity = json.loads(json.dumps(identity))  # as the storage gives it back: tuples are lists
    url = storage or f"sqlite:///{(report_dir / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(url, identity, settings)
    scorer = Scorer(real_set, patch_config, settings)

    def objective(trial: optuna.Trial) -> float:
        values = {p.path: p.suggest(trial, settings.fit_width) for p in space}
        start = time.perf_counter()
        images = render_good(trial_config(with_ranges(data, values), settings, str(scene)), settings.renderer)
        scores = scorer.score(images)
        for name, value in scores.items():
            trial.set_user_attr(name, value)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        return scores[settings.objective]

    if not study.trials:  # the shipped scene is trial 0: the baseline, and TPE's first point
        study.enqueue_trial({k: v for p in space for k, v in p.shipped_params(settings.fit_width).items()})
    remaining = settings.trials - len(completed(study))
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            callbacks=[
                optuna.study.MaxTrialsCallback(settings.trials, states=(optuna.trial.TrialState.COMPLETE,))
            ],
            show_progress_bar=progress,
            gc_after_trial=True,
        )
    done = completed(study)
    best = min(done, key=lambda t: t.value)
    best_ranges = _ranges_of(best, space, settings)
    shipped_value = done[0].value if done[0].number == 0 else math.nan
    _write_scene(
        out,
        data,
        best_ranges,
        scene,
        real,
        best,
        shipped_value,
        url,
        len(done),
        settings,
        len(real_set.paths),
    )
    seconds = [t.user_attrs["seconds"] for t in done if "seconds" in t.user_attrs]
    result = CalibrationResult(
        scene,
        out,
        report_dir / "report.html",
        best.value,
        shipped_value,
        len(done),
        best_ranges,
        float(np.mean(seconds)),
    )
    write_report(result, study, space, data, real_set, scorer, settings)
    return result


def _load(scene: Path) -> tuple[dict, SceneConfig]:
    config = load_config(scene)
    return yaml.safe_load(scene.read_text(encoding="utf-8")), config


def _ranges_of(
    trial: optuna.trial.FrozenTrial, space: list[Parameter], settings: CalibrationSettings
) -> dict:
    ranges = {}
    for p in space:
        width = trial.params.get(f"{p.path}.width", p.shipped[1] - p.shipped[0])
        ranges[p.path] = p.clip(trial.params[p.path], width)
    return ranges


def _write_scene(
    out: Path,
    data: dict,
    ranges: dict[str, tuple[float, float]],
    scene: Path,
    real: Path,
    best: optuna.trial.FrozenTrial,
    shipped_value: float,
    storage: str,
    trials: int,
    settings: CalibrationSettings,
    real_images: int,
) -> None:
    """The calibrated scene: the scene document with the fitted ranges, a header that says what
    it was fitted to, validated before it replaces anything."""
    fitted = with_ranges(data, ranges)
    fitted["name"] = f"{data['name']}_fit"
    header = [
        f"# Calibrated by `synth calibrate` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {scene}",
        f"# against the good train images of {real} ({real_images} images): {settings.objective} "
        f"{best.value:.5g} at trial {best.number} (shipped scene: {shipped_value:.5g}).",
        f"# {trials} completed trials ({settings.sampler}, seed {settings.seed}), each {settings.images} "
        f"{settings.renderer} renders at {settings.resolution} px; study: {storage}",
        "# Fitted ranges (shipped → calibrated):",
    ]
    header += [f"#   {path}: {list(_current(data, path))} → {list(value)}" for path, value in ranges.items()]
    text = (
        "\n".join(header) + "\n" + yaml.safe_dump(fitted, sort_keys=False, default_flow_style=None, width=100)
    )
    parse_config(yaml.safe_load(text), str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)


def _current(data: dict, path: str) -> Iterable:
    node: Any = data
    for part in path.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError):
            return ["default"]
    return node


# --- the report -----------------------------------------------------------------------------


def write_report(
    result: CalibrationResult,
    study: optuna.Study,
    space: list[Parameter],
    data: dict,
    real: PatchSet,
    scorer: Scorer,
    settings: CalibrationSettings,
) -> None:
    """report.html: optimisation history, parameter importances, contact sheet real | shipped |
    calibrated, and the fitted ranges."""
    from evaluate.report import Section, write_html

    folder = result.report.parent
    done = completed(study)
    history = _plot_history(done, folder / "history.png", settings.objective)
    importances = _importances(study)
    sheet = folder / "contact_sheet.png"
    _contact_sheet(sheet, real, data, result, settings)
    rows = [
        [p.path, str(list(p.shipped)), str(list(result.best[p.path])), importances.get(p.path, math.nan)]
        for p in space
    ]
    write_html(
        result.report,
        f"calibration of {result.scene}",
        [
            Section(
                "result",
                f"{settings.objective}: shipped {result.shipped_value:.5g}, best {result.best_value:.5g} "
                f"over {result.trials} trials ({result.seconds_per_trial:.1f} s per trial). "
                f"Calibrated scene: {result.out}.",
            ),
            Section("optimisation history", images=[("history", history)]),
            Section(
                "fitted ranges",
                "Importance: PED-ANOVA share of the objective's variation over the trials "
                "(centre and width together).",
                (["parameter", "shipped", "calibrated", "importance"], rows),
            ),
            Section(
                "contact sheet",
                "Rows: real good images | shipped scene | calibrated scene.",
                images=[("sheet", sheet)],
            ),
        ],
    )


def _plot_history(trials: list[optuna.trial.FrozenTrial], path: Path, objective: str) -> Path:
    from evaluate.plots import new_figure, save_figure

    fig, ax = new_figure()
    numbers = [t.number for t in trials]
    values = [t.value for t in trials]
    ax.plot(numbers, values, "o", ms=3, label="trial")
    ax.plot(numbers, np.minimum.accumulate(values), "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend()
    return save_figure(fig, path)


def _importances(study: optuna.Study) -> dict[str, float]:
    """Per range, the summed importance of its centre and width (needs a few trials)."""
    import optuna

    if len(completed(study)) < 4:
        return {}
    try:
        raw = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        )
    except (ValueError, RuntimeError):  # too little spread among the trials
        return {}
    merged: dict[str, float] = {}
    for name, value in raw.items():
        key = name.removesuffix(".width")
        merged[key] = merged.get(key, 0.0) + float(value)
    return merged


def _contact_sheet(
    path: Path, real: PatchSet, data: dict, result: CalibrationResult, settings: CalibrationSettings
) -> None:
    import cv2

    from synth.images import read_image
    from synth.writers import atomic_write_png

    size = 160
    sheet_settings = CalibrationSettings(
        images=SHEET_IMAGES, resolution=settings.resolution, renderer=settings.renderer
    )
    picks = np.linspace(0, len(real.paths) - 1, SHEET_IMAGES).round().astype(int)
    rows = [
        [read_image(real.paths[i]) for i in picks],
        render_good(trial_config(data, sheet_settings, str(result.scene)), settings.renderer),
        render_good(
            trial_config(with_ranges(data, result.best), sheet_settings, str(result.out)), settings.renderer
        ),
    ]
    lines = [
        np.concatenate(
            [cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in row], axis=1
        )
        for row in rows
    ]
    atomic_write_png(path, np.concatenate(lines))
