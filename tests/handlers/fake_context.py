"""A small stand-in for TorchServe's Context, as its own handler unit tests use."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import yaml


class FakeContext:
    """Holds what a handler reads from the Context and records per-request statuses."""

    def __init__(self, model_dir: Path | None = None, batch_size: int = 8) -> None:
        """``model_dir``: an unpacked archive; None for a handler built by hand in a test."""
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None,
                                  "batch_size": batch_size}
        if model_dir is not None:
            self.manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
            self.model_yaml_config = yaml.safe_load((model_dir / "model-config.yaml").read_text())
        self.statuses: dict[int, tuple[int, str]] = {}

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        # TorchServe 0.12 frames the phrase by its length in characters: anything but
        # printable ASCII corrupts the frame and kills the worker.
        if not (phrase.isascii() and phrase.isprintable()):
            raise ValueError(f"this phrase would kill a TorchServe worker: {phrase!r}")
        self.statuses[idx] = (code, phrase)


def extract_archive(mar: Path, into: Path) -> Path:
    """Unpack a .mar the way TorchServe does before it loads the handler."""
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(into)
    return into
