"""The one exception hierarchy of defectsynth, and the click group that shows it as one line.

Library code raises a `DefectsynthError` whose message names the file, field or option at
fault and what was expected; it never raises click exceptions. Every command line is a
`CommandGroup`, which turns those errors into `Error: <message>` and exit status 1, never a
traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pydantic import ValidationError


class DefectsynthError(Exception):
    """A user-facing error: bad input, a bad file or an impossible request."""


class ConfigError(DefectsynthError, ValueError):
    """A config, option or setting that cannot be used; the message names the field."""


class DataError(DefectsynthError, ValueError):
    """Data on disk (a dataset, an image, a label file) that is missing, damaged or inconsistent."""


class ModelError(DefectsynthError, ValueError):
    """A model file (coreset, weights) that is missing, damaged or incompatible."""


class OutputError(DefectsynthError):
    """A place a command cannot or must not write: a full disk, a read-only or unwritable
    folder, a path under a file, a dataset's own folders, or one of the command's inputs."""


def validation_problems(error: ValidationError, schema: str = "") -> list[str]:
    """Each problem of a pydantic validation as `field.path: message (got value)`: the one
    wording of a bad setting, for scene configs, experiments and model settings alike.
    `schema` names where the known keys are shown (e.g. `scenes/*.yaml`)."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling{f'; see {schema} for the schema' if schema else ''})"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{path}: {message}{shown}")
    return lines


class CommandGroup(click.Group):
    """A click group that reports any `DefectsynthError` of its commands as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DefectsynthError as error:
            raise click.ClickException(str(error)) from None
