"""The one settings pattern of the models (PatchCore, crop classifier, segmenter, Mask R-CNN)
and of the measurements built on them (gap, calibration): a frozen pydantic model that refuses
unknown keys and bad values as one `ConfigError`, and that a weights file stores without its
device."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from synth.errors import ConfigError, validation_problems
from train.devices import check_device


class Settings(BaseModel):
    """Base of a model's settings; `what` names the model in its errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: ClassVar[str]

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as error:
            problems = "; ".join(validation_problems(error))
            raise ConfigError(f"invalid {self.what} settings: {problems}") from None

    @classmethod
    def of(cls, source: str, **fields: Any) -> Self:
        """Settings whose error names where they came from (a command, a file's section)."""
        try:
            return cls(**fields)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings a weights file stores: all but the device (the user's choice each run)."""
        return self.model_dump(exclude={"device"})

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> Self:
        """Settings read from a weights file, with `overrides` (e.g. the device) on top."""
        unknown = sorted(set(data) - set(cls.model_fields)) + sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"unknown {cls.what} settings {unknown}; known: {sorted(cls.model_fields)}")
        return cls(**{**data, **overrides})

    def replace(self, **changes: Any) -> Self:
        """These settings with `changes`, validated (and unknown keys named) like stored ones."""
        return self.from_dict(self.model_dump(), **changes)


class DeviceSettings(Settings):
    """Settings of a model that runs on a chosen device (`cpu`, `cuda`, `cuda:1`, `mps`)."""

    device: str = "cpu"

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        check_device(device)
        return device
