"""The catalogue of built archives, ``catalogue.json`` beside them in the model store.

`vigil build` records each archive it writes: name, version, family, languages, labels,
what a request may carry, input and output sizes, the extractors a fusion head reads,
engine, precision and threshold; the daemons read it at start-up (its reader and the
format: ``orchestrator/catalogue.py``). ``live`` holds the version each model serves with:
the one the manifest names at its latest build.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT = 1
FILE_NAME = "catalogue.json"


def read(store: Path) -> dict[str, Any]:
    """The store's catalogue, or an empty one."""
    path = store / FILE_NAME
    if not path.exists():
        return {"format": FORMAT, "models": [], "live": {}}
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: format {document.get('format')!r}, expected {FORMAT}")
    return document


def entry(store: Path, name: str, version: str | None = None) -> dict[str, Any]:
    """The catalogue entry of ``name`` (its live version, or ``version``); KeyError if none."""
    document = read(store)
    version = version or document["live"].get(name)
    for model in document["models"]:
        if (model["name"], model["version"]) == (name, version):
            return model
    raise KeyError(f"{name} {version or '(no live version)'} is not in {store / FILE_NAME}")


def archive_path(store: Path, name: str, version: str | None = None) -> Path:
    """Where the archive of ``name`` (live, or ``version``) lies in ``store``."""
    return store / entry(store, name, version)["file"]


def record(store: Path, model: dict[str, Any], *, live: bool = True) -> None:
    """Add or replace ``model``'s entry (by name and version), with its archive's SHA-256
    and build time, and make it live unless ``live`` is false. Written atomically."""
    archive = store / model["file"]
    model = {**model, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
             "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    document = read(store)
    document["models"] = [m for m in document["models"]
                          if (m["name"], m["version"]) != (model["name"], model["version"])]
    document["models"].append(model)
    if live:
        document["live"][model["name"]] = model["version"]
    with tempfile.NamedTemporaryFile("w", dir=store, suffix=".tmp", delete=False) as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
    os.replace(handle.name, store / FILE_NAME)
