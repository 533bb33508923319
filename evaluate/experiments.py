"""The domain-gap experiment: `evaluate domain-gap EXPERIMENT.yaml`.

A matrix of training scenarios (real only, synthetic variants, synthetic pretrained + real
fine-tuned, melded coresets) crossed with a real-data budget (k real good images), every
cell evaluated with the same threshold rule on the same real validation and test splits.
Everything expensive is cached under the output folder and keyed by what produced it:
the imported real data (its `real:` settings), each synthetic dataset (scene, overrides, n,
renderer), each coreset (its data and PatchCore settings), and each finished cell's result JSON
(written atomically; keyed by everything it depends on, see `Runner.cell_stem`), so a rerun
only does what is missing and an edited experiment recomputes exactly the cells it touches.

With `synthetic_test: true` every cell is also scored on the test split of the experiment's own
synthetic data (base settings, impurities included), thresholded on its synthetic val split: the
one place false alarms on impurities can be measured when the real data has none.

YOLO cells (an optional `yolo:` section) train a single-class `defect` detector per scenario and
budget, where k counts real images with labelled defects, and are scored on the same real test
split with evaluate.detector's box metrics; they get their own table beside PatchCore's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from evaluate import anomaly, detector, importers
from evaluate import metrics as m
from evaluate.report import Section, markdown_table, write_csv, write_html
from synth.errors import ConfigError
from synth.writers import atomic_write_json

Budget = int | Literal["all"]
USES_REAL = {"real", "finetune", "meld"}
USES_SYNTHETIC = {"synthetic", "finetune", "meld"}


class ExperimentError(ConfigError):
    """An experiment file that cannot be run; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RealData(_Model):
    """Where the real data is and how to import and split it (see evaluate.importers)."""

    format: Literal["mvtec", "folders", "yolo", "coco", "labelme"] = "folders"
    src: str
    seed: int = 0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    group_pattern: str | None = None
    impurities: list[str] = Field(default_factory=list)


class SyntheticData(_Model):
    """The scene rendered for synthetic scenarios; `overrides` are deep-merged into it."""

    scene: str
    n: int = Field(200, ge=1)
    renderer: Literal["raster", "cycles"] = "raster"
    overrides: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Model):
    """One row family of the table: how its coreset is trained."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    train: Literal["real", "synthetic", "finetune", "meld"]
    overrides: dict[str, Any] = Field(default_factory=dict, description="scene overrides")
    patchcore: dict[str, Any] = Field(default_factory=dict)


class YoloSettings(_Model):
    """YOLO cells: one class `defect` (every defect class merged, impurities dropped).

    One class because PatchCore is class-agnostic too and a few real images per class give
    no stable per-class AP; per-class recall is still reported. `overrides` are scene overrides
    for the YOLO renders (a detector needs defects in its train split, PatchCore none).
    """

    model: str = "yolo11n.yaml"
    scenarios: list[str] | None = Field(None, description="scenario names with a YOLO cell (default all)")
    train: dict[str, Any] = Field(default_factory=dict, description="ultralytics train arguments")
    finetune: dict[str, Any] = Field(default_factory=dict, description="train arguments for fine-tuning")
    real_fraction: float = Field(0.5, ge=0, le=1, description="share of real images in a meld")
    conf: float = Field(0.25, ge=0, le=1, description="working confidence for recall and false alarms")
    overrides: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    real: RealData
    synthetic: SyntheticData | None = None
    patchcore: dict[str, Any] = Field(default_factory=dict, description="PatchCoreConfig fields")
    budgets: list[Budget] = Field(default_factory=lambda: ["all"], min_length=1)
    coverage_k: float = Field(0.0, ge=0, le=100)
    scenarios: list[Scenario] = Field(min_length=1)
    synthetic_test: bool = Field(False, description="also score every cell on the synthetic test split")
    yolo: YoloSettings | None = None


def load_experiment(path: Path, real: Path | None = None, scene: Path | None = None) -> ExperimentConfig:
    """Parse and validate an experiment YAML; relative paths are relative to the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ExperimentError(f"{path}: cannot read experiment ({e})") from None
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  - {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise ExperimentError(f"{path}: invalid experiment\n" + "\n".join(lines)) from None
    base = path.resolve().parent
    config.real.src = str(real.resolve() if real else (base / config.real.src).resolve())
    if config.synthetic:
        config.synthetic.scene = str(scene.resolve() if scene else (base / config.synthetic.scene).resolve())
    needs_synthetic = [s.name for s in config.scenarios if s.train in USES_SYNTHETIC]
    if needs_synthetic and config.synthetic is None:
        raise ExperimentError(f"{path}: scenarios {needs_synthetic} need a `synthetic:` section")
    if config.synthetic_test and config.synthetic is None:
        raise ExperimentError(f"{path}: synthetic_test needs a `synthetic:` section")
    names = [s.name for s in config.scenarios]
    if len(set(names)) != len(names):
        raise ExperimentError(f"{path}: scenario names must be unique, got {names}")
    unknown = sorted(set(config.yolo.scenarios or []) - set(names)) if config.yolo else []
    if unknown:
        raise ExperimentError(f"{path}: yolo.scenarios {unknown} are not among the scenarios {names}")
    return config


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


class Runner:
    """Builds (or finds in the cache) the data and coresets of each cell, then evaluates it."""

    def __init__(self, config: ExperimentConfig, out: Path):
        self.config = config
        self.out = out
        self.real_root = out / f"real-{_key(config.real.model_dump())}"

    # ------------------------------------------------------------- data
    def import_real(self) -> None:
        if (self.real_root / "import_report.json").exists():
            return
        r = self.config.real
        source = importers.scan(r.format, Path(r.src))
        importers.import_dataset(source, self.real_root, r.split, r.seed, r.group_pattern, r.impurities)

    def real_good_train(self, budget: Budget) -> list[Path]:
        """The first `budget` real good train images in a seeded order (smaller budgets nest)."""
        from synth.dataset import Dataset

        paths = sorted(s.image_path for s in Dataset(self.real_root).samples("train") if s.good)
        order = np.random.default_rng(self.config.real.seed).permutation(len(paths))
        chosen = [paths[i] for i in order]
        if budget != "all" and budget > len(chosen):
            raise ExperimentError(f"budget {budget} > the {len(chosen)} real good train images")
        return chosen if budget == "all" else chosen[:budget]

    def synthetic_root(self, scenario: Scenario | None, extra: dict[str, Any] | None = None) -> Path:
        """Render (once per scene, overrides, n and renderer) the scenario's synthetic data, or
        with no scenario the experiment's base synthetic data."""
        from synth.config import ConfigError, deep_merge, load_config
        from synth.render import render_dataset, scaled_config

        syn = self.config.synthetic
        assert syn is not None
        overrides = deep_merge(deep_merge(syn.overrides, scenario.overrides if scenario else {}), extra or {})
        scene = Path(syn.scene)
        key = _key(scene.read_text() if scene.is_file() else str(scene), overrides, syn.n, syn.renderer)
        root = self.out / "synthetic" / f"{scene.stem}-{key}"
        try:
            config = scaled_config(load_config(scene, overrides), syn.n)
        except ConfigError as e:
            where = f"scenario {scenario.name}" if scenario else "synthetic"
            raise ExperimentError(f"{where}: {e}") from None
        render_dataset(config, root, scene_path=str(scene), renderer=syn.renderer)
        return root

    # ------------------------------------------------------------- models
    def patchcore_config(self, scenario: Scenario):
        from train.patchcore import PatchCoreConfig

        fields = {**self.config.patchcore, **scenario.patchcore}
        if "image_size" in fields:
            fields["image_size"] = tuple(fields["image_size"])
        try:
            return PatchCoreConfig(**fields)
        except (TypeError, ValueError) as e:
            raise ExperimentError(f"scenario {scenario.name}: patchcore settings: {e}") from None

    def cached(self, key: str, build):
        """A coreset from the cache, or built, saved and returned."""
        from train.patchcore import Coreset

        path = self.out / "coresets" / f"{key}.safetensors"
        if path.exists():
            return Coreset.load(path)
        coreset = build()
        tmp = path.with_name(f".{path.name}.tmp")
        coreset.save(tmp)
        tmp.replace(path)
        return coreset

    def synthetic_coreset(self, scenario: Scenario):
        from train.patchcore import pretrain

        root = self.synthetic_root(scenario)
        config = self.patchcore_config(scenario)
        key = f"synthetic-{_key(root.name, config.to_dict())}"
        return self.cached(key, lambda: pretrain(root, config))

    def real_coreset(self, scenario: Scenario, budget: Budget):
        from train.patchcore import pretrain

        config = self.patchcore_config(scenario)
        paths = self.real_good_train(budget)
        key = f"real{budget}-{_key([str(p) for p in paths], config.to_dict())}"
        return self.cached(key, lambda: pretrain(paths, config))

    def coreset(self, scenario: Scenario, budget: Budget | None):
        """The coreset of one cell, by how its scenario trains."""
        from train.patchcore import finetune, meld

        if scenario.train == "synthetic":
            return self.synthetic_coreset(scenario)
        if scenario.train == "real":
            return self.real_coreset(scenario, budget)
        base = self.synthetic_coreset(scenario)
        if scenario.train == "finetune":
            paths = self.real_good_train(budget)
            key = f"finetune{budget}-{_key(base.datasets, [str(p) for p in paths])}"
            return self.cached(key, lambda: finetune(base, paths))
        real = self.real_coreset(scenario, budget)
        return meld([base, real], size=base.size)

    # ------------------------------------------------------------- cells
    def cell_stem(self, scenario: Scenario, budget: Budget | None, *settings: Any) -> str:
        """A cell's file name: its name and a key of everything its result depends on.

        That is the real settings, the scenario, the model `settings` and, for scenarios that
        use synthetic data, the synthetic settings and the scene file's text, so an edited
        experiment recomputes exactly the cells it changes.
        """
        synthetic = self.synthetic_settings() if scenario.train in USES_SYNTHETIC else (None, None)
        key = _key(self.config.real.model_dump(), *synthetic, scenario.model_dump(), *settings)
        return f"{self.cell_name(scenario, budget)}-{key}"

    def synthetic_settings(self) -> tuple[dict, str | None]:
        """The synthetic section and the scene file's text: what synthetic data depends on."""
        syn = self.config.synthetic
        assert syn is not None
        scene = Path(syn.scene)
        return syn.model_dump(), scene.read_text() if scene.is_file() else None

    def cells(self) -> list[tuple[Scenario, Budget | None]]:
        return [
            (s, b)
            for s in self.config.scenarios
            for b in (self.config.budgets if s.train in USES_REAL else [None])
        ]

    @staticmethod
    def cell_name(scenario: Scenario, budget: Budget | None) -> str:
        return scenario.name if budget is None else f"{scenario.name}__real{budget}"

    def run_cell(self, scenario: Scenario, budget: Budget | None, on_synthetic: bool = False) -> dict:
        """One cell's result on the real test split, or on the synthetic one (`on_synthetic`)."""
        settings = [self.config.patchcore, self.config.coverage_k]
        if on_synthetic:
            settings.append(self.synthetic_settings())
        stem = self.cell_stem(scenario, budget, *settings)
        path = self.out / ("synthetic_test" if on_synthetic else "cells") / f"{stem}.json"
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        coreset = self.coreset(scenario, budget)
        data = self.synthetic_root(None) if on_synthetic else self.real_root
        result = anomaly.evaluate_predictor(
            coreset.predict, data, path.with_suffix(""), coreset.threshold, self.config.coverage_k
        )
        result.update(
            data=str(data),
            cell=self.cell_name(scenario, budget),
            cell_dir=str(path.with_suffix("").relative_to(self.out)),
            scenario=scenario.name,
            train=scenario.train,
            real_good_images=0 if budget is None else len(self.real_good_train(budget)),
            budget=budget,
            coreset_datasets=coreset.datasets,
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result

    def run(self) -> tuple[list[dict], list[dict], list[dict]]:
        """PatchCore results on the real test split, on the synthetic one (if asked for), and
        YOLO results, one per cell."""
        self.import_real()
        results = []
        for scenario, budget in tqdm(self.cells(), desc="domain-gap cells", unit="cell"):
            results.append(self.run_cell(scenario, budget))
        synthetic_results = []
        if self.config.synthetic_test:
            for scenario, budget in tqdm(self.cells(), desc="synthetic-test cells", unit="cell"):
                synthetic_results.append(self.run_cell(scenario, budget, on_synthetic=True))
        yolo_results = []
        for scenario, budget in tqdm(self.yolo_cells(), desc="YOLO cells", unit="cell"):
            yolo_results.append(self.run_yolo_cell(scenario, budget))
        return results, synthetic_results, yolo_results

    # ------------------------------------------------------------- YOLO
    @property
    def yolo(self) -> YoloSettings:
        assert self.config.yolo is not None
        return self.config.yolo

    def yolo_view(self, source: Path, name: str) -> Path:
        """A single-class copy of a canonical dataset: images hard-linked, defect labels -> 0.

        Impurity labels are dropped (a stain is background). Written to a temporary folder and
        renamed, so a view that exists is complete.
        """
        from synth.dataset import Dataset

        root = self.out / "yolo" / "data" / name
        if root.exists():
            return root
        dataset = Dataset(source)
        defect_ids = {str(c.id - 1) for c in dataset.classes if c.kind == "defect"}
        tmp = root.with_name(f".{name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        splits = [split for split, count in dataset.splits.items() if count]
        for split in splits:
            for sample in dataset.samples(split):
                image = tmp / "images" / split / sample.image_path.name
                image.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(sample.image_path, image)
                except OSError:
                    shutil.copyfile(sample.image_path, image)
                lines = sample.labels_path.read_text().splitlines() if sample.labels_path.exists() else []
                parts = [line.split(maxsplit=1) for line in lines]
                labels = tmp / "labels" / split / f"{sample.id}.txt"
                labels.parent.mkdir(parents=True, exist_ok=True)
                labels.write_text("".join(f"0 {p[1]}\n" for p in parts if len(p) == 2 and p[0] in defect_ids))
        entries = {split: f"images/{split}" for split in splits}
        (tmp / "dataset.yaml").write_text(yaml.safe_dump({"path": ".", **entries, "names": {0: "defect"}}))
        tmp.rename(root)
        return root

    def real_defect_train(self, budget: Budget) -> list[str]:
        """The first `budget` real train images with defects in a seeded order (budgets nest).

        For YOLO k counts labelled images, since labelling defects is what real data costs;
        real good images are left out, which also keeps CPU epochs short.
        """
        from synth.dataset import Dataset

        names = sorted(s.image_path.name for s in Dataset(self.real_root).samples("train") if not s.good)
        order = np.random.default_rng(self.config.real.seed).permutation(len(names))
        chosen = [names[i] for i in order]
        if budget != "all" and budget > len(chosen):
            raise ExperimentError(f"YOLO budget {budget} > the {len(chosen)} real train images with defects")
        return chosen if budget == "all" else chosen[:budget]

    def yolo_real(self, budget: Budget) -> Path:
        """A data file over the budget's real train images, validated on the real val split."""
        view = self.yolo_view(self.real_root, self.real_root.name)
        images = "".join(f"images/train/{name}\n" for name in self.real_defect_train(budget))
        (view / f"train_real{budget}.txt").write_text(images)
        data = {"path": ".", "train": f"train_real{budget}.txt", "val": "images/val", "names": {0: "defect"}}
        path = view / f"real{budget}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def yolo_synthetic(self, scenario: Scenario) -> Path:
        root = self.synthetic_root(scenario, self.yolo.overrides)
        return self.yolo_view(root, root.name)

    def yolo_args(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        from train.yolo.training import YoloSetupError, train_args

        try:
            return train_args(**{**self.yolo.train, **(extra or {})})
        except YoloSetupError as e:
            raise ExperimentError(f"yolo settings: {e}") from None

    @staticmethod
    def yolo_trained(run_dir: Path, train) -> Path:
        """The weights of a finished run (its run.json), else of `train()` in a fresh folder."""
        from train.yolo.training import YoloSetupError

        record = run_dir / "run.json"
        if record.exists():
            return Path(json.loads(record.read_text())["weights"])
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run
        try:
            return train().weights
        except YoloSetupError as e:
            raise ExperimentError(f"YOLO {run_dir.name}: {e}") from None

    def yolo_pretrained(self, scenario: Scenario) -> Path:
        """Weights trained on the scenario's synthetic data, shared by the cells that use them."""
        from train.yolo.training import pretrain

        data, args = self.yolo_synthetic(scenario), self.yolo_args()
        run_dir = self.out / "yolo" / "runs" / f"pretrain-{_key(data.name, args, self.yolo.model)}"
        return self.yolo_trained(run_dir, lambda: pretrain(data, run_dir, args, model=self.yolo.model))

    def yolo_weights(self, scenario: Scenario, budget: Budget | None, run_dir: Path) -> Path:
        """The weights of one YOLO cell, by how its scenario trains."""
        from train.yolo.training import finetune, meld, pretrain

        y = self.yolo
        if scenario.train == "synthetic":
            return self.yolo_pretrained(scenario)
        assert budget is not None
        real = self.yolo_real(budget)
        if scenario.train == "real":
            return self.yolo_trained(
                run_dir, lambda: pretrain(real, run_dir, self.yolo_args(), model=y.model)
            )
        if scenario.train == "finetune":
            base, args = self.yolo_pretrained(scenario), self.yolo_args(y.finetune)
            return self.yolo_trained(run_dir, lambda: finetune(base, real, run_dir, args))
        data, args = self.yolo_synthetic(scenario), self.yolo_args()
        return self.yolo_trained(
            run_dir, lambda: meld(data, real, run_dir, args, y.real_fraction, model=y.model)
        )

    def yolo_cells(self) -> list[tuple[Scenario, Budget | None]]:
        if self.config.yolo is None:
            return []
        chosen = self.config.yolo.scenarios
        return [(s, b) for s, b in self.cells() if chosen is None or s.name in chosen]

    def run_yolo_cell(self, scenario: Scenario, budget: Budget | None) -> dict:
        stem = self.cell_stem(scenario, budget, self.yolo.model_dump())
        path = self.out / "yolo" / "cells" / f"{stem}.json"
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        weights = self.yolo_weights(scenario, budget, self.out / "yolo" / "runs" / stem)
        result = self.evaluate_yolo(weights, path.with_suffix(""))
        result.update(
            cell=self.cell_name(scenario, budget),
            scenario=scenario.name,
            train=scenario.train,
            real_defect_images=0 if budget is None else len(self.real_defect_train(budget)),
            budget=budget,
            weights=str(weights),
            examples_dir=str(path.with_suffix("").relative_to(self.out) / "examples"),
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result

    def evaluate_yolo(self, weights: Path, out: Path) -> dict:
        """Box metrics of single-class weights on the real test split (see evaluate.detector).

        Every defect instance is a `defect` truth; recall is also given per real class.
        """
        from synth.dataset import Dataset
        from train.yolo.offline import import_ultralytics

        samples = Dataset(self.real_root).samples("test")
        model = import_ultralytics(self.out / "yolo").YOLO(str(weights))
        preds = detector.predict_boxes(model, samples, int(self.yolo_args()["imgsz"]))
        classes, truths = [], []
        for sample in samples:
            for inst, box in zip(sample.meta["instances"], detector.truth_boxes(sample), strict=True):
                if inst["kind"] == "defect":
                    classes.append(inst["class_name"])
                    truths.append(m.Box(box.image, 1, box.xyxy))
        ids = [s.id for s in samples]
        good = [s.id for s in samples if s.good]
        result = m.detection_metrics(truths, preds, ids, {1: "defect"}, good, self.yolo.conf)
        found, _ = m.match_detections(truths, [p for p in preds if p.score >= self.yolo.conf])
        result["recall_by_class"] = {
            c: float(np.mean([i in found for i, k in enumerate(classes) if k == c]))
            for c in sorted(set(classes))
        }
        figures = detector.draw_examples(samples, truths, preds, self.yolo.conf, out)
        result["examples"] = [image_id for image_id, _ in figures]
        return result


def table(results: list[dict], kinds: dict[str, str]) -> tuple[list[str], list[list]]:
    """One row per cell: P/R/F1 px, mean defect-wise recall, per-class recall, image AUROC."""
    classes = sorted(kinds, key=lambda n: (kinds[n] != "defect", n))
    header = ["scenario", "real good imgs", "P_px", "R_px", "F1_px", "mean DW recall"]
    header += [f"{n} (impurity, lower better)" if kinds[n] == "impurity" else n for n in classes]
    header += ["image AUROC", "pixel AUROC", "AUPRO"]
    rows = []
    for r in results:
        recall = {**r["defect_wise"]["per_class"], **r["impurity_recall"]}
        rows.append(
            [
                r["scenario"],
                r["real_good_images"],
                r["pixel"]["precision"],
                r["pixel"]["recall"],
                r["pixel"]["f1"],
                r["defect_wise"]["mean_defect_recall"],
            ]
            + [recall.get(n, float("nan")) for n in classes]
            + [r["image"]["auroc"], r["pixel"]["auroc"], r["pixel"]["aupro"]]
        )
    return header, rows


def yolo_table(results: list[dict]) -> tuple[list[str], list[list]]:
    """One row per YOLO cell: box mAPs, recall (overall and per real class), false alarms."""
    classes = sorted({c for r in results for c in r["recall_by_class"]})
    header = ["scenario", "real defect imgs", "mAP50", "mAP50-95", "recall"]
    header += [f"recall {c}" for c in classes] + ["false alarms on good"]
    rows = [
        [
            r["scenario"],
            r["real_defect_images"],
            r["map50"],
            r["map50_95"],
            r["per_class"]["defect"]["recall"],
        ]
        + [r["recall_by_class"].get(c, float("nan")) for c in classes]
        + [r["good_images_with_false_alarm"] / r["good_images"] if r["good_images"] else float("nan")]
        for r in results
    ]
    return header, rows


def _write_tables(out: Path, stem: str, header: list[str], rows: list[list], seconds: float) -> None:
    (out / f"{stem}.md").write_text(markdown_table(header, rows))
    write_csv(out / f"{stem}.csv", header, rows)
    atomic_write_json(out / f"{stem}.json", {"header": header, "rows": rows, "seconds": seconds})


def yolo_sections(results: list[dict], out: Path) -> list[Section]:
    """The YOLO table and each cell's example detections."""
    if not results:
        return []
    conf = results[0]["conf"]
    sections = [
        Section(
            "YOLO (one class: defect)",
            text=(
                f"A single-class detector per cell (every defect class is `defect`, impurities are "
                f"background), scored with COCO box mAP on the real test split; k counts real "
                f"train images with labelled defects. "
                f"Recall and false alarms at confidence {conf}: a defect is found when a box of "
                f"IoU >= 0.5 covers it; false alarms = share of good test images with any box."
            ),
            table=yolo_table(results),
        )
    ]
    legend = "Boxes: green = found, red = missed, yellow = false alarm (at the working confidence)."
    for r in results:
        examples = out / r["examples_dir"]
        images = [(image_id, examples / f"{image_id}.png") for image_id in r["examples"]]
        sections.append(Section(f"YOLO {r['cell']}", legend, images=images))
    return sections


def synthetic_test_sections(results: list[dict], kinds: dict[str, str], out: Path) -> list[Section]:
    """The synthetic-test table and each cell's examples (false alarms on impurities show here)."""
    if not results:
        return []
    sections = [
        Section(
            "Synthetic test split (impurities)",
            text=(
                "Every cell again, thresholded at max pixel F1 on the validation split of the "
                "experiment's own synthetic data and measured on its test split, impurities "
                "included: an impurity column is the share of impurities flagged (lower is better)."
            ),
            table=table(results, kinds),
        )
    ]
    for r in results:
        sections += anomaly.report_sections(r, out / r["cell_dir"], f"synthetic test: {r['cell']}")
    return sections


def write_outputs(
    results: list[dict],
    synthetic_results: list[dict],
    yolo_results: list[dict],
    kinds: dict[str, str],
    synthetic_kinds: dict[str, str],
    out: Path,
    title: str,
    seconds: float,
) -> Path:
    """table.* (PatchCore), synthetic_test_table.* and yolo_table.* (if any) and the
    self-contained report.html."""
    header, rows = table(results, kinds)
    _write_tables(out, "table", header, rows, seconds)
    if synthetic_results:
        _write_tables(out, "synthetic_test_table", *table(synthetic_results, synthetic_kinds), seconds)
    if yolo_results:
        _write_tables(out, "yolo_table", *yolo_table(yolo_results), seconds)
    k = results[0]["defect_wise"]["k"] if results else 0
    sections = [
        Section(
            "Summary",
            text=(
                f"Every cell is thresholded at max pixel F1 on the real validation split and "
                f"measured on the real test split. A defect counts as found when at least {k}% "
                f"of its pixels are flagged (0 = one pixel). Impurity recall: lower is better."
            ),
            table=(header, rows),
        )
    ]
    for r in results:
        sections += anomaly.report_sections(r, out / r["cell_dir"], r["cell"])
    sections += synthetic_test_sections(synthetic_results, synthetic_kinds, out)
    return write_html(out / "report.html", title, sections + yolo_sections(yolo_results, out))


@click.command("domain-gap")
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: runs/<experiment name>).",
)
@click.option(
    "--real",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Real data source, instead of the file's real.src.",
)
@click.option(
    "--scene",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scene config, instead of the file's synthetic.scene.",
)
@click.option(
    "--patchcore-seed",
    type=int,
    default=None,
    help="PatchCore seed of every cell, instead of the file's (repeat runs measure the spread).",
)
def domain_gap(
    experiment: Path, out: Path | None, real: Path | None, scene: Path | None, patchcore_seed: int | None
) -> None:
    """Run a domain-gap experiment matrix; finished cells are not recomputed."""
    from synth.dataset import Dataset

    start = time.perf_counter()
    try:
        config = load_experiment(experiment, real, scene)
        if patchcore_seed is not None:
            config.patchcore["seed"] = patchcore_seed
            for scenario in config.scenarios:
                scenario.patchcore.pop("seed", None)
        out = out or Path("runs") / config.name
        runner = Runner(config, out)
        results, synthetic_results, yolo_results = runner.run()
    except (ExperimentError, importers.ImportFailure) as e:
        raise click.ClickException(str(e)) from None
    kinds = {c.name: c.kind for c in Dataset(runner.real_root).classes}
    synthetic_data = [Dataset(Path(r["data"])) for r in synthetic_results[:1]]
    synthetic_kinds = {c.name: c.kind for d in synthetic_data for c in d.classes}
    seconds = time.perf_counter() - start
    html = write_outputs(
        results,
        synthetic_results,
        yolo_results,
        kinds,
        synthetic_kinds,
        out,
        f"domain gap: {config.name}",
        seconds,
    )
    click.echo((out / "table.md").read_text())
    if synthetic_results:
        click.echo("On the synthetic test split:\n" + (out / "synthetic_test_table.md").read_text())
    if yolo_results:
        click.echo((out / "yolo_table.md").read_text())
    click.echo(
        f"{len(results)} PatchCore and {len(yolo_results)} YOLO cells in {seconds:.0f} s this run; "
        f"wrote the tables (.md, .csv, .json) beside {html}"
    )
