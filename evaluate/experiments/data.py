"""What every cell is built from: the imported real data, the renders, and the cache keys.

Everything expensive is stored under the output folder and named by `key(recipe)`, where a
recipe is a JSON-able description of everything the thing depends on, including the recipes
of its inputs. A rerun finds what is done; an edit changes exactly the keys it touches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evaluate import importers
from evaluate.experiments.config import (
    Budget,
    ExperimentConfig,
    ExperimentError,
    Scenario,
    perlin_settings,
    scene_overrides,
)

# `appearance: {reference: real}` or `surface: {photo: {source: real}}` in an experiment's scene
# or overrides: the imported real dataset (good train images).
REAL_REFERENCE = "real"


def key(recipe: Any) -> str:
    """The cache key of a recipe: the one function every cached thing is named by."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:10]


def photo_source(scene: Path, overrides: dict) -> object:
    """`surface.photo.source` of a scene file with the overrides merged in; None without one."""
    from synth.config import deep_merge

    data = yaml.safe_load(scene.read_text()) if scene.is_file() else {}
    data = deep_merge(data, overrides) if isinstance(data, dict) else overrides
    surface = data.get("surface")
    photo = surface.get("photo") if isinstance(surface, dict) else None
    return photo.get("source") if isinstance(photo, dict) else None


class ExperimentData:
    """The real dataset of an experiment (imported once) and its synthetic renders."""

    def __init__(self, config: ExperimentConfig, out: Path) -> None:
        self.config = config
        self.out = out
        self.real_root = out / f"real-{key(self.real_recipe())}"
        # One cache of renders for every experiment whose output folder is beside this one (the
        # default outputs all are): the same recipe is rendered once, whatever the file.
        self.renders = out.parent / "renders"
        self._seeded: dict[bool, list[Path]] = {}  # good / defective train images, after import
        # Renders known finished in this run: not resumed again for every cell that uses them (a
        # resume rewrites the dataset-wide files under the writer's lock, which cells that run at
        # once as Ray tasks would contend for).
        self.rendered: set[Path] = set()

    def real_recipe(self) -> dict:
        return self.config.real.recipe()

    def import_real(self) -> None:
        """Import the real data once; then check every budget against what it holds."""
        if not (self.real_root / "import_report.json").exists():
            r = self.config.real
            source = importers.scan(
                r.format, Path(r.src), r.names or None, class_pattern=r.class_pattern, class_map=r.class_map
            )
            importers.import_dataset(
                source, self.real_root, r.split, r.seed, r.group_pattern, r.impurities, cutting=r.cutting
            )
        needs_good = sorted({s.name for s, budget in self.config.patchcore_pairs() if budget is not None})
        if needs_good and not self.real_good_train("all"):
            raise ExperimentError(
                f"scenarios {needs_good} train PatchCore on real good images, but the real data "
                f"{self.config.real.src} has no good train image (every image is defective); list only "
                "synthetic scenarios in `patchcore_cells`"
            )
        for budget in self.config.budgets if needs_good else []:
            self.real_good_train(budget)
        if self.config.yolo is not None:
            for budget in self.config.budgets:
                self.real_defect_train(budget)

    def _seeded_train(self, good: bool, budget: Budget, what: str) -> list[Path]:
        """The first `budget` real train images (good or defective) in a seeded order, so
        that smaller budgets nest inside larger ones."""
        if good not in self._seeded:  # every cell asks; the imported dataset is read once
            from synth.dataset import Dataset

            paths = sorted(s.image_path for s in Dataset(self.real_root).samples("train") if s.good == good)
            order = np.random.default_rng(self.config.real.seed).permutation(len(paths))
            self._seeded[good] = [paths[i] for i in order]
        chosen = self._seeded[good]
        if budget != "all" and budget > len(chosen):
            raise ExperimentError(f"budgets: {budget} > the {len(chosen)} real {what} train images")
        return chosen if budget == "all" else chosen[:budget]

    def real_good_train(self, budget: Budget) -> list[Path]:
        return self._seeded_train(True, budget, "good")

    def real_defect_train(self, budget: Budget) -> list[Path]:
        """For the supervised models (YOLO, Mask R-CNN, the segmenter), k counts labelled
        images, since labelling defects is what real data costs; real good images are left out,
        which also keeps CPU epochs short."""
        return self._seeded_train(False, budget, "defective")

    def real_images_recipe(self, paths: list[Path]) -> dict:
        return {"real": self.real_recipe(), "images": [p.name for p in paths]}

    def synthetic_recipe(self, scenario: Scenario | None, extra: dict | None = None) -> dict:
        """Scene text, merged overrides, n and renderer: all a render depends on; for a scenario
        whose source is perlin, the `perlin:` settings and the real data they start from.

        An appearance transfer to `reference: real` matches the renders to this experiment's
        imported real good train images, and a photo surface with `source: real` draws its
        photos from them, so the real data becomes part of the recipe.
        """
        if scenario is not None and scenario.source == "perlin":
            return self.perlin_recipe()
        syn = self.config.synthetic
        assert syn is not None
        scene = Path(syn.scene)
        overrides = scene_overrides(self.config, scenario, extra)
        recipe = {
            "scene": scene.read_text() if scene.is_file() else str(scene),
            "overrides": overrides,
            "n": syn.n,
            "renderer": syn.renderer,
        }
        appearance = overrides.get("appearance")
        if isinstance(appearance, dict) and appearance.get("reference") == REAL_REFERENCE:
            recipe["overrides"] = {
                **overrides,
                "appearance": {**appearance, "reference": str(self.real_root)},
            }
            recipe["real"] = self.real_recipe()
        if photo_source(scene, overrides) == REAL_REFERENCE:
            from synth.config import deep_merge

            photo = {"surface": {"photo": {"source": str(self.real_root)}}}
            recipe["overrides"] = deep_merge(recipe["overrides"], photo)
            recipe["real"] = self.real_recipe()
        return recipe

    def synthetic_root(self, scenario: Scenario | None, extra: dict | None = None) -> Path:
        """Render (or resume) the scenario's synthetic data, or with no scenario the
        experiment's base synthetic data, in the shared `renders` folder."""
        from synth.config import load_config
        from synth.render import render_dataset, scaled_config

        if scenario is not None and scenario.source == "perlin":
            return self.perlin_root()
        syn = self.config.synthetic
        assert syn is not None
        recipe = self.synthetic_recipe(scenario, extra)
        scene = Path(syn.scene)
        name = f"{scene.stem}-{key(recipe)}"
        root = self.renders / name
        if not root.exists() and (self.out / "synthetic" / name).is_dir():
            root = self.out / "synthetic" / name  # rendered before renders were shared
        if root not in self.rendered:
            config = scaled_config(load_config(scene, recipe["overrides"]), syn.n)
            # Runs of one experiment (other seeds, scenarios) share renders: wait, do not refuse.
            render_dataset(config, root, scene_path=str(scene), renderer=syn.renderer, wait=True)
            self.rendered.add(root)
        return root

    def perlin_recipe(self) -> dict:
        return {"perlin": perlin_settings(self.config).model_dump(mode="json"), "real": self.real_recipe()}

    def perlin_root(self) -> Path:
        """The 2D baseline's dataset (synth.perlin), made from this experiment's imported real good
        train images and kept beside them: keyed by the `perlin:` settings and the real recipe."""
        from synth.perlin import perlin_dataset

        root = self.out / "perlin" / f"perlin-{key(self.perlin_recipe())}"
        if root not in self.rendered:
            settings = perlin_settings(self.config).model_dump()
            perlin_dataset(self.real_root, root, **settings, progress=False)
            self.rendered.add(root)
        return root
