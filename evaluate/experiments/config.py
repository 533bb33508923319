"""The experiment file: its schema, and everything checked before any work is done.

A bad PatchCore field, YOLO argument, scene override or budget is reported at load, naming
the field, not after an hour of cells have run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
)

from evaluate import importers
from synth.errors import ConfigError, DefectsynthError, validation_problems

T = TypeVar("T")


def _once_each(values: list[T], what: str = "") -> list[T]:
    """A list of budgets, seeds or names whose every item differs (a repeated one would repeat
    its cells and table rows)."""
    repeated = dict.fromkeys(v for i, v in enumerate(values) if v in values[:i])
    if repeated:
        raise ValueError(f"{what}{', '.join(map(str, repeated))} given more than once; each may appear once")
    return values


Unique = Annotated[list[T], AfterValidator(_once_each)]
Budget = PositiveInt | Literal["all"]
Train = Literal["real", "synthetic", "finetune", "meld"]
USES_REAL = {"real", "finetune", "meld"}
USES_SYNTHETIC = {"synthetic", "finetune", "meld"}
DETECTORS = ("yolo", "maskrcnn")  # the detector sections, each a DetectorSettings


class ExperimentError(ConfigError):
    """An experiment file that cannot be run; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RealData(_Model):
    """Where the real data is and how to import and split it (see evaluate.importers): the
    options of `evaluate import`, under the names of `importers.scan` and `importers.Cutting`."""

    format: Literal["mvtec", "folders", "masks", "yolo", "coco", "labelme"] = "folders"
    src: str
    seed: int = 0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    group_pattern: str | None = None
    impurities: list[str] = Field(default_factory=list)
    class_pattern: str = Field(importers.DEFAULT_CLASS_PATTERN, description="masks: the class regex")
    class_map: list[str] = Field(default_factory=list, description="masks: a table name or old=new")
    cutting: importers.Cutting = Field(default_factory=importers.Cutting, description="crop and tiles")
    names: list[str] = Field(default_factory=list, description="yolo: class names (default: its data yaml's)")

    # Fields added after experiments were run: left out of the recipe at their default, so the
    # real data of older experiments keeps its cache key.
    ADDED: ClassVar[tuple[str, ...]] = ("class_pattern", "class_map", "cutting", "names")

    def recipe(self) -> dict:
        """Everything the imported real data depends on, as JSON data."""
        fields = type(self).model_fields
        default = {f: fields[f].get_default(call_default_factory=True) for f in self.ADDED}
        return self.model_dump(exclude={f for f in self.ADDED if getattr(self, f) == default[f]})


class SyntheticData(_Model):
    """The scene rendered for synthetic scenarios; `overrides` are deep-merged into it."""

    scene: str
    n: int = Field(200, ge=1)
    renderer: Literal["raster", "cycles"] = "raster"
    overrides: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Model):
    """One row family of the table: how its coreset is trained. `source` says where its
    synthetic images come from: the scene's renders, or the 2D baseline every renderer must
    beat, DRAEM's Perlin anomalies pasted on the real good train images (the `perlin:` section,
    synth.perlin)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    train: Train
    source: Literal["renders", "perlin"] = "renders"
    overrides: dict[str, Any] = Field(default_factory=dict, description="scene overrides")
    patchcore: dict[str, Any] = Field(default_factory=dict)


class DetectorSettings(_Model):
    """What the detector sections (`yolo:`, `maskrcnn:`) share: one class `defect` (every defect
    class merged, impurities dropped).

    One class because PatchCore is class-agnostic too and a few real images per class give
    no stable per-class AP; per-class recall is still reported. `seeds`: every cell is trained
    once per seed (the seed of `train` replaced), for the spread; unset, once with `train`'s own
    seed, under the cell names and cache keys of the files written before seeds existed.
    `overrides` are scene overrides for the detector's renders (a detector needs defects in its
    train split, PatchCore none).
    """

    scenarios: list[str] | None = Field(None, description="scenario names with a cell (default all)")
    seeds: Unique[int] | None = Field(None, min_length=1)
    real_fraction: float = Field(0.5, ge=0, le=1, description="share of real images in a meld")
    conf: float = Field(0.25, ge=0, le=1, description="working confidence for recall and false alarms")
    overrides: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(
        default_factory=dict, description="ultralytics arguments or MaskRCNNConfig fields"
    )
    finetune: dict[str, Any] = Field(default_factory=dict, description="settings changed for fine-tuning")

    def seeded(self, fields: dict[str, Any], seed: int | None) -> dict[str, Any]:
        """Training fields with a cell's seed (as if written in them)."""
        return fields if seed is None else {**fields, "seed": seed}

    def recipe(self, seed: int | None) -> dict[str, Any]:
        """The settings a cell of `seed` depends on: its seed is part of its train fields."""
        settings = self.model_dump(exclude={"scenarios", "seeds"})
        return {**settings, "train": self.seeded(self.train, seed)}


class YoloSettings(DetectorSettings):
    """YOLO cells: `train` and `finetune` hold ultralytics train arguments. `model` defaults to
    the ImageNet MobileNetV2 detector (train/yolo/models); `yolo11n.yaml` trains from random
    weights."""

    model: str = "mobilenetv2-yolo-detect.yaml"


class MaskRCNNSettings(DetectorSettings):
    """Mask R-CNN cells (train/maskrcnn): `train` and `finetune` hold MaskRCNNConfig fields;
    trained on exact instance masks, so scored by box and mask AP."""


class SegmentSettings(_Model):
    """Supervised segmenter cells (train/segment): k counts real train images with defect masks.

    Scenario kinds map as for YOLO: real = real only, synthetic = synthetic only, finetune =
    pretrained on the synthetic set then fine-tuned on the k real images, meld = mixed (one
    training on both, real oversampled to `train.real_share` of the crops). Every cell is trained
    once per seed in `seeds`, for the spread. `overrides` are scene overrides for the renders (a
    segmenter learns from defects, so its train split needs them).
    """

    scenarios: list[str] | None = Field(None, description="scenario names with a segment cell (default all)")
    budgets: Unique[Budget] = Field(default_factory=lambda: [10], min_length=1)
    seeds: Unique[int] = Field(default_factory=lambda: [0], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict, description="SegmentConfig fields")
    finetune: dict[str, Any] = Field(default_factory=dict, description="settings changed for fine-tuning")
    overrides: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    real: RealData
    synthetic: SyntheticData | None = None
    perlin: dict[str, Any] | None = Field(None, description="synth.perlin.PerlinSettings fields")
    patchcore: dict[str, Any] = Field(default_factory=dict, description="PatchCoreConfig fields")
    budgets: Unique[Budget] = Field(default_factory=lambda: ["all"], min_length=1)
    coverage_k: float = Field(0.0, ge=0, le=100)
    scenarios: list[Scenario] = Field(min_length=1)
    synthetic_test: bool = Field(False, description="also score every cell on the synthetic test split")
    yolo: YoloSettings | None = None
    maskrcnn: MaskRCNNSettings | None = None
    segment: SegmentSettings | None = None
    patchcore_cells: bool | list[str] = Field(
        True,
        description="false: only the detector and segment cells; a list: the scenarios with PatchCore cells",
    )

    @field_validator("scenarios")
    @classmethod
    def _names_once_each(cls, scenarios: list[Scenario]) -> list[Scenario]:
        _once_each([s.name for s in scenarios], "name ")
        return scenarios

    def cells(self) -> list[tuple[Scenario, Budget | None]]:
        """Every (scenario, real budget) pair; scenarios without real data have one cell."""
        return [(s, b) for s in self.scenarios for b in (self.budgets if s.train in USES_REAL else [None])]

    def patchcore_pairs(self) -> list[tuple[Scenario, Budget | None]]:
        """The (scenario, real budget) pairs that have a PatchCore cell."""
        chosen = self.patchcore_cells
        if isinstance(chosen, bool):
            return self.cells() if chosen else []
        return [(s, b) for s, b in self.cells() if s.name in chosen]

    def detector_cells(self, kind: str) -> list[tuple[Scenario, Budget | None, int | None]]:
        """Every (scenario, real budget, seed) of the `yolo` or `maskrcnn` section (seed None:
        the section gives no seeds)."""
        settings: DetectorSettings | None = getattr(self, kind)
        if settings is None:
            return []
        chosen = settings.scenarios
        seeds = settings.seeds or [None]
        return [(s, b, seed) for s, b in self.cells() if chosen is None or s.name in chosen for seed in seeds]

    def segment_cells(self) -> list[tuple[Scenario, Budget | None, int]]:
        """Every (scenario, real defect-image budget, seed) of the segment section."""
        if self.segment is None:
            return []
        chosen = self.segment.scenarios
        return [
            (s, b, seed)
            for s in self.scenarios
            if chosen is None or s.name in chosen
            for b in (self.segment.budgets if s.train in USES_REAL else [None])
            for seed in self.segment.seeds
        ]


def maskrcnn_config(config: ExperimentConfig, seed: int | None, finetune: bool = False):
    """The effective MaskRCNNConfig of a Mask R-CNN cell (the fine-tuning one with its changes)."""
    from train.maskrcnn.config import MaskRCNNConfig

    settings = config.maskrcnn
    assert settings is not None
    where = "maskrcnn.finetune" if finetune else "maskrcnn.train"
    fixed = sorted(set(settings.finetune) & set(MaskRCNNConfig().network_setup()))
    if fixed:
        raise ExperimentError(f"maskrcnn.finetune: fine-tuning keeps the network; cannot change {fixed}")
    fields = settings.seeded({**settings.train, **(settings.finetune if finetune else {})}, seed)
    try:
        return MaskRCNNConfig.of(where, **fields)
    except DefectsynthError as e:
        raise ExperimentError(str(e)) from None


def segment_config(config: ExperimentConfig, seed: int, finetune: bool = False):
    """The effective SegmentConfig of a segment cell (the fine-tuning one with its changes)."""
    from train.segment.config import SegmentConfig

    assert config.segment is not None
    fields = {**config.segment.train, **(config.segment.finetune if finetune else {}), "seed": seed}
    try:
        return SegmentConfig.from_dict(fields)
    except DefectsynthError as e:
        where = "segment.finetune" if finetune else "segment.train"
        raise ExperimentError(f"{where}: {e}") from None


def cell_name(scenario: Scenario, budget: Budget | None, seed: int | None = None) -> str:
    name = scenario.name if budget is None else f"{scenario.name}__real{budget}"
    return name if seed is None else f"{name}__seed{seed}"


def patchcore_config(config: ExperimentConfig, scenario: Scenario):
    """The scenario's effective PatchCoreConfig: the experiment's fields, then its own."""
    from train.patchcore import PatchCoreConfig

    try:
        return PatchCoreConfig(**{**config.patchcore, **scenario.patchcore})
    except DefectsynthError as e:
        raise ExperimentError(f"scenario {scenario.name}: patchcore settings: {e}") from None


def perlin_settings(config: ExperimentConfig):
    """The `perlin:` section as synth.perlin.PerlinSettings."""
    from synth.perlin import PerlinSettings

    try:
        return PerlinSettings.of("perlin", **(config.perlin or {}))
    except DefectsynthError as e:
        raise ExperimentError(str(e)) from None


def rendered_scenarios(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The scenarios whose synthetic images are the scene's renders."""
    return [s for s in scenarios if s.train in USES_SYNTHETIC and s.source == "renders"]


def scene_overrides(config: ExperimentConfig, scenario: Scenario | None, extra: dict | None = None) -> dict:
    """The overrides of one synthetic dataset: the experiment's, the scenario's, then `extra`."""
    from synth.config import deep_merge

    assert config.synthetic is not None
    merged = deep_merge(config.synthetic.overrides, scenario.overrides if scenario else {})
    return deep_merge(merged, extra or {})


def load_experiment(
    path: Path, real: Path | None = None, scene: Path | None = None, patchcore_seed: int | None = None
) -> ExperimentConfig:
    """Parse and validate an experiment YAML; relative paths are relative to the file.

    `patchcore_seed` replaces every PatchCore seed of the file (repeat runs for the spread).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ExperimentError(f"{path}: cannot read experiment ({e})") from None
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  - {problem}" for problem in validation_problems(e)]
        raise ExperimentError(f"{path}: invalid experiment\n" + "\n".join(lines)) from None
    base = path.resolve().parent
    config.real.src = str(real.resolve() if real else (base / config.real.src).resolve())
    if config.synthetic:
        config.synthetic.scene = str(scene.resolve() if scene else (base / config.synthetic.scene).resolve())
    if patchcore_seed is not None:
        set_patchcore_seed(config, patchcore_seed)
    try:
        check(config)
    except ExperimentError as e:
        raise ExperimentError(f"{path}: {e}") from None
    return config


def set_patchcore_seed(config: ExperimentConfig, seed: int) -> None:
    """Make `seed` every PatchCore seed of the experiment (`--patchcore-seed`)."""
    config.patchcore["seed"] = seed
    for scenario in config.scenarios:
        scenario.patchcore.pop("seed", None)


CELL_KINDS = ("patchcore", *DETECTORS, "segment")


def restrict(
    config: ExperimentConfig,
    scenarios: Sequence[str] = (),
    budgets: Sequence[str] = (),
    kinds: Sequence[str] = (),
    seeds: Sequence[int] = (),
) -> ExperimentConfig:
    """The part of an experiment with only the named scenarios, real budgets ("all" or a count),
    kinds of cell (CELL_KINDS) and detector and segment seeds (a section without `seeds` has no
    cell of a named seed); none named: every one. To run some cells of a long matrix first:
    cells keep their cache keys, which depend on a cell's own recipe only."""
    unknown = sorted(set(kinds) - set(CELL_KINDS))
    if unknown:
        raise ExperimentError(f"--kind {unknown}: expected some of {list(CELL_KINDS)}")
    for kind in kinds:
        if kind == "patchcore" and not config.patchcore_pairs():
            raise ExperimentError("--kind patchcore: the experiment has no PatchCore cell (patchcore_cells)")
        if kind != "patchcore" and getattr(config, kind) is None:
            raise ExperimentError(f"--kind {kind}: the experiment has no `{kind}:` section")
    names = [s.name for s in config.scenarios]
    unknown = sorted(set(scenarios) - set(names))
    if unknown:
        raise ExperimentError(f"--scenario {unknown} are not among the scenarios {names}")
    wanted: list[Budget] = [b if b == "all" else _budget(b) for b in budgets]
    known = set(config.budgets) | set(config.segment.budgets if config.segment else [])
    unknown = sorted(str(b) for b in set(wanted) - known)
    if unknown:
        raise ExperimentError(f"--budget {unknown} are not among the budgets {sorted(map(str, known))}")

    sections = [getattr(config, kind) for kind in CELL_KINDS[1:]]
    known_seeds = {seed for section in sections if section is not None for seed in section.seeds or []}
    unknown = sorted(set(seeds) - known_seeds)
    if unknown:
        raise ExperimentError(
            f"--seed {unknown} are not among the detector and segment seeds {sorted(known_seeds)}"
        )

    def kept(chosen: list, allowed: Sequence) -> list:
        return [c for c in chosen if not allowed or c in allowed]

    part = config.model_copy(deep=True)
    if kinds:
        if "patchcore" not in kinds:
            part.patchcore_cells = False
        for kind in CELL_KINDS[1:]:
            if kind not in kinds:
                setattr(part, kind, None)
    part.scenarios = [s for s in part.scenarios if not scenarios or s.name in scenarios]
    part.budgets = kept(part.budgets, wanted)
    if isinstance(part.patchcore_cells, list):
        part.patchcore_cells = kept(part.patchcore_cells, scenarios)
    for kind in DETECTORS:
        settings = getattr(part, kind)
        if settings is not None and settings.scenarios is not None:
            settings.scenarios = kept(settings.scenarios, scenarios)
    for kind in CELL_KINDS[1:] if seeds else ():
        section = getattr(part, kind)
        if section is not None:
            section.seeds = kept(section.seeds or [], seeds)
            if not section.seeds:  # an empty list would mean "the file's own seed"
                setattr(part, kind, None)
    if part.segment is not None:
        part.segment.budgets = kept(part.segment.budgets, wanted)
        if part.segment.scenarios is not None:
            part.segment.scenarios = kept(part.segment.scenarios, scenarios)
    cells = part.patchcore_pairs() or part.segment_cells() or any(map(part.detector_cells, DETECTORS))
    if not cells and (scenarios or budgets or kinds or seeds):
        raise ExperimentError("--kind, --scenario, --budget and --seed together select no cell of it")
    return part


def _budget(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ExperimentError(f"--budget {text!r}: expected a count of real images or 'all'") from None


def raster_simplifications(config: ExperimentConfig) -> list[str]:
    """What the raster renders of an experiment leave out (bend, tilt, roll: a flat plate seen
    straight down). `synth render` refuses these; an experiment runs them, flat, and says so,
    because the shipped PatchCore tables were measured that way."""
    from synth.config import load_config
    from synth.raster import unrealisable

    syn = config.synthetic
    if syn is None or syn.renderer != "raster":
        return []
    scenarios = [None, *rendered_scenarios(config.scenarios)]
    asked = {
        field
        for scenario in scenarios
        for field in unrealisable(load_config(syn.scene, scene_overrides(config, scenario)))
    }
    if not asked:
        return []
    return [f"the raster renders show a flat plate seen straight down, without {', '.join(sorted(asked))}"]


def check(config: ExperimentConfig) -> None:
    """Everything that can be checked without running a cell."""
    from synth.config import load_config

    needs_synthetic = [s.name for s in rendered_scenarios(config.scenarios)]
    if needs_synthetic and config.synthetic is None:
        raise ExperimentError(f"scenarios {needs_synthetic} need a `synthetic:` section")
    check_perlin(config)
    if config.synthetic_test and config.synthetic is None:
        raise ExperimentError("synthetic_test needs a `synthetic:` section")
    names = [s.name for s in config.scenarios]
    chosen = config.patchcore_cells
    unknown = sorted(set(chosen) - set(names)) if isinstance(chosen, list) else []
    if unknown:
        raise ExperimentError(f"patchcore_cells {unknown} are not among the scenarios {names}")
    for kind in DETECTORS:
        settings = getattr(config, kind)
        unknown = sorted(set(settings.scenarios or []) - set(names)) if settings else []
        if unknown:
            raise ExperimentError(f"{kind}.scenarios {unknown} are not among the scenarios {names}")
    unknown = sorted(set(config.segment.scenarios or []) - set(names)) if config.segment else []
    if unknown:
        raise ExperimentError(f"segment.scenarios {unknown} are not among the scenarios {names}")
    if config.segment is not None:
        segment_config(config, 0)
        segment_config(config, 0, finetune=True)
    if config.maskrcnn is not None:
        maskrcnn_config(config, None)
        maskrcnn_config(config, None, finetune=True)
    for scenario in config.scenarios:
        patchcore_config(config, scenario)
    if config.synthetic is not None:
        renders: list[tuple[str, Scenario | None, dict | None]] = [("synthetic.overrides", None, None)]
        renders += [(f"scenario {s.name}: overrides", s, None) for s in rendered_scenarios(config.scenarios)]
        for kind in DETECTORS:
            settings = getattr(config, kind)
            renders += [
                (f"{kind}.overrides (scenario {s.name})", s, settings.overrides)
                for s, _, _ in config.detector_cells(kind)
                if s.source == "renders"
            ]
        if config.segment is not None:
            renders += [
                (f"segment.overrides (scenario {s.name})", s, config.segment.overrides)
                for s, _, _ in config.segment_cells()
                if s.train in USES_SYNTHETIC and s.source == "renders"
            ]
        for where, scenario, extra in renders:
            try:
                load_config(config.synthetic.scene, scene_overrides(config, scenario, extra))
            except ConfigError as e:
                raise ExperimentError(f"{where}: {e}") from None
    if config.yolo is not None:
        from train.yolo.training import train_args

        for field in ("train", "finetune"):
            try:
                train_args(**{**config.yolo.train, **getattr(config.yolo, field)})
            except DefectsynthError as e:
                raise ExperimentError(f"yolo.{field}: {e}") from None
        check_epochs(config.yolo)


def check_perlin(config: ExperimentConfig) -> None:
    """Perlin scenarios: synthetic ones, with a `perlin:` section, no scene overrides and no
    PatchCore cell (their images are all defective or real)."""
    perlin = [s for s in config.scenarios if s.source == "perlin"]
    for s in perlin:
        if s.train not in USES_SYNTHETIC:
            raise ExperimentError(
                f"scenario {s.name}: source perlin needs synthetic data; train {s.train} has none"
            )
        if s.overrides:
            raise ExperimentError(
                f"scenario {s.name}: overrides change the scene, which source perlin has none of"
            )
    pairs = sorted({s.name for s, _ in config.patchcore_pairs() if s.source == "perlin"})
    if pairs:
        raise ExperimentError(
            f"scenarios {pairs}: PatchCore trains on good images, which Perlin anomalies are not; "
            "leave them out of `patchcore_cells`"
        )
    if perlin and config.perlin is None:
        raise ExperimentError(f"scenarios {[s.name for s in perlin]} need a `perlin:` section")
    if config.perlin is not None:
        perlin_settings(config)


def check_epochs(yolo: YoloSettings) -> None:
    """A YOLO cell trains for a number of epochs, which its cache key holds: `epochs` in `train`,
    and no time limit (ultralytics' `time`), which would make the cell depend on the machine."""
    for field in ("train", "finetune"):
        hours = getattr(yolo, field).get("time")
        if hours is not None:
            raise ExperimentError(
                f"yolo.{field}: time {hours}: a cell trains for a number of epochs, not hours "
                "(the epochs are part of its cache key); give epochs instead"
            )
    if "epochs" not in yolo.train:
        raise ExperimentError(
            "yolo.train: no epochs: a cell trains for a number of epochs (part of its cache key)"
        )
