"""`synth`: validate scene configs, render datasets, preview scenes, verify datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from synth.config import SceneConfig, load_config
from synth.errors import CommandGroup, DefectsynthError
from synth.outputs import OutputPath
from train.options import Finite

RENDERERS = click.Choice(["cycles", "raster"])
DEVICES = click.Choice(["cpu", "cuda", "optix", "hip"])  # synth.render.Device


def _config(path: str, n: int | None = None, renderer: str = "cycles") -> SceneConfig:
    # numpy, OpenCV and the render loop are imported on use: `synth --help` starts fast.
    from synth.raster import check_realisable
    from synth.render import scaled_config

    config = scaled_config(load_config(path), n)
    if renderer == "raster":
        check_realisable(config, path)
    return config


def _shard(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    """`i/N` as a pair; as an option callback, so click's error names `--shard`."""
    try:
        index, count = (int(x) for x in value.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected i/N with 0 <= i < N, got {value!r}") from None
    return index, count


def _given(name: str) -> bool:
    """Whether the command line set option `name` (not its default)."""
    return click.get_current_context().get_parameter_source(name) == ParameterSource.COMMANDLINE


@click.group(cls=CommandGroup)
def main() -> None:
    """Synthetic, perfectly labelled surface-inspection datasets."""


@main.command()
@click.argument("scenes", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(scenes: tuple[str, ...]) -> None:
    """Check scene configs: what each valid one will render, every problem of each invalid one.

    Exit 1 if any is invalid, after checking all of them.
    """
    failed = False
    for scene in scenes:
        try:
            config = _config(scene)
        except DefectsynthError as error:
            click.echo(f"Error: {error}", err=True)
            failed = True
            continue
        counts = config.split_counts()
        click.echo(
            f"{scene}: valid ({config.surface.family}, {sum(counts.values())} images {counts}, "
            f"{len(config.defects)} defect and {len(config.impurities)} impurity classes, "
            f"hash {config.digest()})"
        )
    if failed:
        sys.exit(1)


@main.command()
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=OutputPath(folder=True), help="dataset directory")
@click.option("--n", type=int, default=None, help="total images (split sizes scaled); default: the config's")
@click.option("--renderer", type=RENDERERS, default="cycles", show_default=True)
@click.option(
    "--device",
    type=DEVICES,
    default="cpu",
    show_default=True,
    help="where Cycles renders: the CPU, or every GPU of that kind (recorded in the dataset)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="parallel renderer processes",
)
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    callback=_shard,
    help="render only shard i of N (i/N)",
)
@click.option("--no-finalize", is_flag=True, help="skip the dataset-wide files (used by --workers)")
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace a dataset made with other parameters (its samples are deleted)",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="render on Ray: alone, a local instance; `auto`, this node's cluster; or host:port",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(1),
    default=None,
    help="Ray actors, one warm renderer each [default: one per CPU slot of the cluster]",
)
@click.option(
    "--ray-cpus-per-actor",
    type=Finite(0, min_open=True),
    default=1.0,
    show_default=True,
    help="CPUs each actor reserves (its Cycles threads)",
)
@click.option(
    "--ray-gpus-per-actor",
    type=Finite(0),
    default=0.0,
    show_default=True,
    help="GPUs each actor reserves and renders on (needs a GPU --device)",
)
@click.option(
    "--ray-retries",
    type=click.IntRange(0),
    default=3,
    show_default=True,
    help="restarts of a dead Ray actor, and retries of the samples it held",
)
@click.option("--quiet", is_flag=True)
def render(
    scene: str,
    out: Path,
    n: int | None,
    renderer: str,
    device: str,
    workers: int,
    shard: tuple[int, int],
    no_finalize: bool,
    overwrite: bool,
    ray_address: str | None,
    ray_actors: int | None,
    ray_cpus_per_actor: float,
    ray_gpus_per_actor: float,
    ray_retries: int,
    quiet: bool,
) -> None:
    """Render SCENE into a canonical dataset at --out (resumes where it stopped).

    --out must be empty or hold a dataset made with the same scene, config and options,
    on the same kind of --device (Cycles' noise differs between CPU and GPU).
    """
    ray_options = ("ray_actors", "ray_cpus_per_actor", "ray_gpus_per_actor", "ray_retries")
    given = [f"--{o.replace('_', '-')}" for o in ray_options if _given(o)]
    if ray_address is None and given:
        raise click.UsageError(f"{', '.join(given)}: only with --ray")
    if ray_address is not None and device == "cpu" and ray_gpus_per_actor > 0:
        raise click.UsageError(
            f"--ray-gpus-per-actor {ray_gpus_per_actor:g}: the actors would render on the CPU; "
            "give a GPU --device (cuda, optix or hip)"
        )
    if ray_address is not None and device != "cpu" and ray_gpus_per_actor == 0:
        raise click.UsageError(
            f"--device {device} with --ray: give --ray-gpus-per-actor (1: a GPU each), "
            "the GPUs each actor reserves and renders on"
        )
    if ray_address is not None and workers > 1:
        raise click.UsageError("--ray and --workers exclude each other (the Ray actors are the workers)")
    if shard != (0, 1) and workers > 1:
        raise click.UsageError("--shard and --workers exclude each other (the workers are shards)")
    if shard != (0, 1) and overwrite:
        raise click.UsageError(
            "--overwrite cannot be used with --shard: each shard would delete the others' samples"
        )
    from synth.appearance import check_reference
    from synth.photo import check_photo
    from synth.render import render_dataset, render_parallel

    config = _config(scene, n, renderer)
    check_reference(config.appearance)  # before the dataset is touched
    check_photo(config, renderer)
    if ray_address is not None:
        from synth.distributed import RayOptions, render_on_ray

        options = RayOptions(ray_address, ray_actors, ray_cpus_per_actor, ray_gpus_per_actor, ray_retries)
        summary = render_on_ray(
            config,
            out,
            options,
            scene_path=scene,
            renderer=renderer,  # type: ignore[arg-type]
            shard=shard,
            finalize=not no_finalize,
            progress=not quiet,
            overwrite=overwrite,
            device=device,  # type: ignore[arg-type]
        )
    elif workers > 1:
        summary = render_parallel(config, out, scene, n, renderer, workers, overwrite, device)  # type: ignore[arg-type]
    else:
        summary = render_dataset(
            config,
            out,
            scene_path=scene,
            renderer=renderer,  # type: ignore[arg-type]
            shard=shard,
            finalize=not no_finalize,
            progress=not quiet,
            overwrite=overwrite,
            device=device,  # type: ignore[arg-type]
        )
    if not quiet:
        click.echo(
            f"{out}: rendered {summary.rendered}, skipped {summary.skipped} finished, "
            f"{summary.seconds:.1f} s; splits {summary.counts}"
        )
        if ray_address is not None and summary.rendered:
            nodes = ", ".join(f"{node[:8]} {count}" for node, count in sorted(summary.nodes.items()))  # type: ignore[attr-defined]
            click.echo(f"Ray: samples per node {nodes}; {len(summary.placed)} actor processes")  # type: ignore[attr-defined]


@main.command()
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option("--out", default="preview.png", show_default=True, type=OutputPath(folder=False))
@click.option("--n", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--renderer", type=RENDERERS, default="cycles", show_default=True)
@click.option("--samples", default=4, show_default=True, type=click.IntRange(1, 4096))
def preview(scene: str, out: Path, n: int, renderer: str, samples: int) -> None:
    """Contact sheet of N images with coloured mask overlays, for tuning a scene by eye."""
    from synth.preview import preview as make_preview

    click.echo(f"wrote {make_preview(_config(scene, renderer=renderer), out, n, renderer, samples)}")  # type: ignore[arg-type]


@main.command()
@click.argument("root", type=click.Path(file_okay=False))
def verify(root: str) -> None:
    """Check a dataset's integrity; lists every problem, exit 1 if any."""
    from synth.dataset import verify as verify_dataset

    problems = verify_dataset(Path(root))
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{root}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{root}: OK")


@main.command()
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option(
    "--real",
    required=True,
    type=click.Path(path_type=Path),
    help="real dataset (its good train images) or folder",
)
@click.option("--out", required=True, type=OutputPath(folder=False), help="calibrated scene YAML")
@click.option("--report", type=OutputPath(folder=True), help="report and study folder")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///REPORT/study.db]")
@click.option("--params", help="comma-separated ranges to fit, NAME or NAME=LOW:HIGH (the centre's span)")
@click.option("--trials", type=int, default=50, show_default=True, help="completed trials in the end")
@click.option("--images", type=int, default=16, show_default=True, help="good images rendered per trial")
@click.option("--resolution", type=int, default=128, show_default=True, help="render and backbone size")
@click.option("--renderer", type=RENDERERS, default="raster", show_default=True)
@click.option("--objective", type=click.Choice(["mmd2", "coverage"]), default="mmd2", show_default=True)
@click.option("--sampler", type=click.Choice(["tpe", "cmaes"]), default="tpe", show_default=True)
@click.option("--fixed-widths", is_flag=True, help="fit only the centres of the ranges, keep their widths")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--quiet", is_flag=True)
def calibrate(
    scene: str,
    real: Path,
    out: Path,
    report: Path | None,
    storage: str | None,
    params: str | None,
    fixed_widths: bool,
    device: str,
    quiet: bool,
    **options,
) -> None:
    """Fit SCENE's numeric ranges to real good images with Optuna; write the calibrated scene.

    A killed run resumes from its storage; several processes given the same --storage share
    one study (for machines, a server URL such as postgresql://...).
    """
    from synth.calibrate import CalibrationSettings
    from synth.calibrate import calibrate as run
    from synth.runs import default_out

    settings = CalibrationSettings(fit_width=not fixed_widths, **options)
    names = params.split(",") if params else None
    report = report or default_out("calibrate", Path(scene).stem)
    result = run(Path(scene), real, out, report, storage, names, settings, device, progress=not quiet)
    click.echo(
        f"{result.trials} trials: {settings.objective} {result.shipped_value:.5g} (shipped) → "
        f"{result.best_value:.5g}; wrote {out} and {result.report}"
    )


@main.command()
@click.option(
    "--real",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="canonical dataset (an imported real set) whose good train images are the sources",
)
@click.option("--out", required=True, type=OutputPath(folder=True), help="dataset directory")
@click.option("--n", required=True, type=click.IntRange(1), help="images with a Perlin anomaly")
@click.option("--seed", required=True, type=click.IntRange(0))
@click.option("--good", type=click.IntRange(0), default=0, show_default=True, help="unchanged good images")
@click.option(
    "--min-area",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="smallest anomaly in pixels; a smaller mask is drawn again",
)
@click.option(
    "--split",
    type=(float, float),
    default=(0.8, 0.2),
    show_default=True,
    metavar="TRAIN VAL",
    help="fractions of the images in train and val",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace a dataset made with other parameters (its samples are deleted)",
)
@click.option("--quiet", is_flag=True)
def perlin(
    real: Path,
    out: Path,
    n: int,
    seed: int,
    good: int,
    min_area: int,
    split: tuple[float, float],
    overwrite: bool,
    quiet: bool,
) -> None:
    """DRAEM's Perlin anomalies (anomalib's PerlinAnomalyGenerator, its own noise as texture)
    pasted onto the good train images of --real, as a canonical dataset at --out (resumes
    where it stopped): the 2D baseline that renders are measured against.
    """
    from synth.perlin import perlin_dataset

    summary = perlin_dataset(
        real, out, n, seed, good=good, min_area=min_area, split=split, overwrite=overwrite, progress=not quiet
    )
    if not quiet:
        click.echo(
            f"{out}: made {summary.rendered}, skipped {summary.skipped} finished, "
            f"{summary.seconds:.1f} s; splits {summary.counts}"
        )


if __name__ == "__main__":
    main()
