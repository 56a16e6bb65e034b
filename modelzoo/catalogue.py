"""The catalogue of built archives, ``catalogue.json`` beside them in the model store.

`vigil build` records each archive it writes: name, version, family, languages, labels,
what a request may carry, input and output sizes, the extractors a fusion head reads,
engine, precision, threshold and, for score models, the reference score distribution that
``vigil_score_psi`` compares live scores with; the daemons read it at start-up (its reader and the
format: ``orchestrator/catalogue.py``). ``live`` holds the version each model serves with:
the one the manifest names at its latest build.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT = 1
FILE_NAME = "catalogue.json"
REFERENCE_BINS = 20


def score_reference(scores: Sequence[float], source: str) -> dict[str, Any]:
    """Bin ``scores`` for the catalogue: upper edges on [0, 1], the fraction of scores in
    each bin (a bin holds the scores above the previous edge, up to its own), the count and
    where they came from. Raises ValueError for no scores."""
    if not scores:
        raise ValueError("a score reference needs scores")
    edges = [round((step + 1) / REFERENCE_BINS, 4) for step in range(REFERENCE_BINS)]
    counts = [0] * REFERENCE_BINS
    for score in scores:
        counts[min(bisect.bisect_left(edges, score), REFERENCE_BINS - 1)] += 1
    return {"edges": edges, "fractions": [count / len(scores) for count in counts],
            "count": len(scores), "source": source}


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


def record(store: Path, model: dict[str, Any], *, live: bool = True,
           candidate: bool = False) -> None:
    """Add or replace ``model``'s entry (by name and version), with its archive's SHA-256
    and build time, and make it live unless ``live`` is false, or the model's candidate (the
    version the audio daemons roll out next). Written atomically."""
    archive = store / model["file"]
    model = {**model, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
             "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    document = read(store)
    document["models"] = [m for m in document["models"]
                          if (m["name"], m["version"]) != (model["name"], model["version"])]
    document["models"].append(model)
    if candidate:
        document.setdefault("candidates", {})[model["name"]] = model["version"]
    elif live:
        document["live"][model["name"]] = model["version"]
    _write(store, document)


def make_live(store: Path, name: str, version: str) -> None:
    """Name the built ``version`` of ``name`` its live version (after a rollout promoted it),
    and no longer its candidate. Raises KeyError when it was never built."""
    entry(store, name, version)
    document = read(store)
    document["live"][name] = version
    if document.get("candidates", {}).get(name) == version:
        del document["candidates"][name]
    _write(store, document)


def _write(store: Path, document: dict[str, Any]) -> None:
    """Replace the catalogue atomically: a reader sees the old one or the new one."""
    with tempfile.NamedTemporaryFile("w", dir=store, suffix=".tmp", delete=False) as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
    os.replace(handle.name, store / FILE_NAME)
