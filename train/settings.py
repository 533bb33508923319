"""The settings pattern of the segmenter and the crop classifier: a frozen dataclass that a
weights file stores without its device and reads back refusing keys it does not know."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, Self

from synth.errors import ConfigError


class Settings:
    """Base of a frozen settings dataclass; `what` names the model in its errors."""

    what: ClassVar[str]

    def check(self, checks: dict[str, bool], hint: str = "") -> None:
        """Refuse the settings whose check failed, all of them named in one error."""
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"invalid {self.what} configuration: {values}{hint}")

    def to_dict(self) -> dict[str, Any]:
        """The settings a weights file stores: all but the device (the user's choice each run)."""
        return {k: v for k, v in asdict(self).items() if k != "device"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> Self:
        """Settings read from a weights file, with `overrides` (e.g. the device) on top."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known) + sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.what} settings {unknown}; known: {sorted(known)}")
        return replace(cls(**data), **overrides) if overrides else cls(**data)
