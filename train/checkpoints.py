"""The weights files of the torch models trained here (segmenter, crop classifier, Mask R-CNN):
a dict tagged with its format, written atomically and read back refusing, in one line that
names the file, anything else (a YOLO .pt, a coreset, another model's weights)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synth.errors import ModelError
from synth.writers import atomic_write_bytes


def weights_start(weights: str | Path) -> str:
    """How a fine-tuning records where it started: the content hash of the weights file, so the
    record holds wherever the file is moved."""
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return f"weights:sha256-{digest}"


def save_checkpoint(data: dict[str, Any], path: Path) -> Path:
    """Write atomically (temp file, then rename): a kill never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


@dataclass(frozen=True)
class WeightsFile:
    """One kind of weights file: its `format` tag, the model's name in errors (`what`) and the
    `command` that writes it."""

    format: str
    what: str
    command: str

    def save(self, data: dict[str, Any], path: Path, finished: bool = True) -> Path:
        """Write `data`; `finished` False while its training is still running (a checkpoint)."""
        return save_checkpoint({"format": self.format, **data, "finished": finished}, path)

    def read(self, path: Path, unfinished: bool = False) -> dict[str, Any]:
        """The file's content; one whose training did not finish is refused unless `unfinished`
        (a resume or a look at the format). Files written before the mark count as finished."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{self.what} weights not found: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelError(f"{path}: not a {self.what} weights file ({reason[:120]})") from None
        if not isinstance(data, dict) or data.get("format") != self.format:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ModelError(
                f"{path}: not a {self.what} weights file (format {found!r}; written by `{self.command}`)"
            )
        if data.get("finished") is False and not unfinished:
            epochs = len(data.get("history") or [])
            raise ModelError(
                f"{path}: unfinished {self.what} training (stopped after {epochs} epoch(s)); "
                f"run `{self.command}` to the end before using it"
            )
        return data
