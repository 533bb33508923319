"""Which compute device a model runs on: one check for PatchCore and YOLO alike, made before
any work, so that `--device cuda` on a machine without a GPU is one clear line."""

from __future__ import annotations

import click

from synth.errors import ConfigError


def check_device(device: str | int | None, option: str = "--device") -> None:
    """Accept torch devices (`cpu`, `cuda`, `cuda:1`, `mps`) and ultralytics GPU lists
    (`0`, `0,1`) that this machine has; None means the model's own default."""
    import torch

    if device is None:
        return
    text = str(device).strip().lower()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text == "cpu" or (text == "mps" and torch.backends.mps.is_available()):
        return
    indices = ["0"] if text == "cuda" else text.removeprefix("cuda:").split(",")
    if all(i.strip().isdigit() and int(i) < gpus for i in indices):
        return
    have = f"{gpus} GPU(s)" if gpus else "no GPU"
    raise ConfigError(f"{option} {device!r}: not available on this machine ({have}); use cpu")


def default_device() -> str:
    """The first GPU when there is one, else the CPU: the default of every command."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _resolve(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    device = default_device() if value is None else value
    try:
        check_device(device)
    except ConfigError as error:
        raise click.BadParameter(str(error).removeprefix("--device "), ctx, param) from None
    return device


device_option = click.option(
    "--device",
    default=None,
    callback=_resolve,
    help="cpu, cuda, cuda:1, mps, or GPU indices 0,1 [first GPU if any, else cpu].",
)
