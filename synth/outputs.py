"""Where a command may write: one check of an output location, made before any work.

Every command's `--out` (and calibrate's `--report`) is an `OutputPath`, so a location that
cannot be written, or must not be, is refused when the command line is read: a file where a
folder is wanted (or the reverse), a path under a file, a folder that is read-only or not
writable, or a path inside a canonical dataset's own folders (`images/`, `masks/`, `labels/` ...),
where a weights file or report would replace or mix with its samples. A command whose output
could be one of its inputs passes them to `check_output` too. What goes wrong later, while
writing (a full disk), is the atomic writer's `OutputError` (synth.writers.write_error).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from synth.errors import OutputError


def check_output(path: Path, folder: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output location (a `folder` or a file) that cannot or must not be written."""
    from synth.writers import LAYOUT  # numpy and OpenCV on use: `synth --help` starts fast

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        found, wanted = ("a folder", "a file") if path.is_dir() else ("a file", "a folder")
        raise OutputError(f"{path}: is {found}; expected {wanted}")
    for given in inputs:
        if path.resolve() == Path(given).resolve():
            raise OutputError(f"{path}: is also an input of this command; choose another output")
    target = path if folder else path.parent
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot be written: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if _read_only(existing) else "is not writable"
        raise OutputError(f"{path}: cannot be written: {existing} {why}")
    absolute = path.resolve()
    for inner, root in zip((absolute, *absolute.parents), absolute.parents, strict=False):
        if inner.name in LAYOUT and (root / "dataset.json").is_file():
            raise OutputError(
                f"{path}: is inside {inner.name}/ of the dataset {root}, whose files it would "
                "replace or mix with; choose another output"
            )


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


class OutputPath(click.Path):
    """A click path option that `check_output` accepts (a `folder` or a file), checked when the
    command line is read; refusals are click's usage errors naming the option."""

    def __init__(self, folder: bool) -> None:
        super().__init__(file_okay=not folder, dir_okay=folder, path_type=Path)
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        try:
            check_output(Path(path), self.folder)
        except OutputError as error:
            self.fail(str(error), param, ctx)
        return path
