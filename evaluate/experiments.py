"""The domain-gap experiment: `evaluate domain-gap EXPERIMENT.yaml`.

A matrix of training scenarios (real only, synthetic variants, synthetic pretrained + real
fine-tuned, melded coresets) crossed with a real-data budget (k real good images), every
cell evaluated with the same threshold rule on the same real validation and test splits.
Everything expensive is cached under the output folder and keyed by what produced it:
the imported real data, each synthetic dataset (scene, overrides, n, renderer), each coreset
(its data and PatchCore settings), and each finished cell's result JSON (written atomically),
so a rerun only does what is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from evaluate import anomaly, importers
from evaluate.report import Section, markdown_table, write_csv, write_html
from synth.writers import atomic_write_json

Budget = int | Literal["all"]
USES_REAL = {"real", "finetune", "meld"}
USES_SYNTHETIC = {"synthetic", "finetune", "meld"}


class ExperimentError(ValueError):
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


class ExperimentConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    real: RealData
    synthetic: SyntheticData | None = None
    patchcore: dict[str, Any] = Field(default_factory=dict, description="PatchCoreConfig fields")
    budgets: list[Budget] = Field(default_factory=lambda: ["all"], min_length=1)
    coverage_k: float = Field(0.0, ge=0, le=100)
    scenarios: list[Scenario] = Field(min_length=1)


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
    names = [s.name for s in config.scenarios]
    if len(set(names)) != len(names):
        raise ExperimentError(f"{path}: scenario names must be unique, got {names}")
    return config


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


class Runner:
    """Builds (or finds in the cache) the data and coresets of each cell, then evaluates it."""

    def __init__(self, config: ExperimentConfig, out: Path):
        self.config = config
        self.out = out
        self.real_root = out / "real"

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

    def synthetic_root(self, scenario: Scenario) -> Path:
        """Render (once per scene, overrides, n and renderer) the scenario's synthetic data."""
        from synth.config import ConfigError, deep_merge, load_config
        from synth.render import render_dataset, scaled_config

        syn = self.config.synthetic
        assert syn is not None
        overrides = deep_merge(syn.overrides, scenario.overrides)
        scene = Path(syn.scene)
        key = _key(scene.read_text() if scene.is_file() else str(scene), overrides, syn.n, syn.renderer)
        root = self.out / "synthetic" / f"{scene.stem}-{key}"
        try:
            config = scaled_config(load_config(scene, overrides), syn.n)
        except ConfigError as e:
            raise ExperimentError(f"scenario {scenario.name}: {e}") from None
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
    def cells(self) -> list[tuple[Scenario, Budget | None]]:
        return [
            (s, b)
            for s in self.config.scenarios
            for b in (self.config.budgets if s.train in USES_REAL else [None])
        ]

    @staticmethod
    def cell_name(scenario: Scenario, budget: Budget | None) -> str:
        return scenario.name if budget is None else f"{scenario.name}__real{budget}"

    def run_cell(self, scenario: Scenario, budget: Budget | None) -> dict:
        name = self.cell_name(scenario, budget)
        path = self.out / "cells" / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        coreset = self.coreset(scenario, budget)
        result = anomaly.evaluate_predictor(
            coreset.predict,
            self.real_root,
            self.out / "cells" / name,
            coreset.threshold,
            self.config.coverage_k,
        )
        result.update(
            cell=name,
            scenario=scenario.name,
            train=scenario.train,
            real_good_images=0 if budget is None else len(self.real_good_train(budget)),
            budget=budget,
            coreset_datasets=coreset.datasets,
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result

    def run(self) -> list[dict]:
        self.import_real()
        results = []
        for scenario, budget in tqdm(self.cells(), desc="domain-gap cells", unit="cell"):
            results.append(self.run_cell(scenario, budget))
        return results


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


def write_outputs(results: list[dict], kinds: dict[str, str], out: Path, title: str, seconds: float) -> Path:
    """table.md / table.csv / table.json and the self-contained report.html."""
    header, rows = table(results, kinds)
    (out / "table.md").write_text(markdown_table(header, rows))
    write_csv(out / "table.csv", header, rows)
    atomic_write_json(out / "table.json", {"header": header, "rows": rows, "seconds": seconds})
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
        cell_dir = out / "cells" / r["cell"]
        sections += anomaly.report_sections(r, cell_dir, r["cell"])
    return write_html(out / "report.html", title, sections)


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
def domain_gap(experiment: Path, out: Path | None, real: Path | None, scene: Path | None) -> None:
    """Run a domain-gap experiment matrix; finished cells are not recomputed."""
    from synth.dataset import Dataset

    start = time.perf_counter()
    try:
        config = load_experiment(experiment, real, scene)
        out = out or Path("runs") / config.name
        runner = Runner(config, out)
        results = runner.run()
    except (ExperimentError, importers.ImportFailure) as e:
        raise click.ClickException(str(e)) from None
    kinds = {c.name: c.kind for c in Dataset(runner.real_root).classes}
    seconds = time.perf_counter() - start
    html = write_outputs(results, kinds, out, f"domain gap: {config.name}", seconds)
    click.echo((out / "table.md").read_text())
    click.echo(
        f"{len(results)} cells in {seconds:.0f} s this run; wrote {out}/table.md, table.csv, "
        f"table.json and {html}"
    )
