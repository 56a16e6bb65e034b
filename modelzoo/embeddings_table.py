"""The embeddings table shared by ``vigil embed`` (writes) and ``vigil train vrt`` (reads).

Columns: ``post_id``, ``label``, and one per modality holding the embedding or null.
Parquet stores the lists natively; CSV stores them as JSON (empty for null). No torch here:
the orchestrator writes these tables too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

MODALITIES = ("visual", "text", "audio")
COLUMNS = ("post_id", "label", *MODALITIES)


def write_table(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
        return
    encoded = table.copy()
    for modality in MODALITIES:
        encoded[modality] = [json.dumps(list(v)) if v is not None else "" for v in encoded[modality]]
    encoded.to_csv(path, index=False)


def read_table(path: Path) -> pd.DataFrame:
    """An embeddings table from Parquet or CSV; raises ValueError when columns are missing."""
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, keep_default_na=False)
        for modality in MODALITIES:
            if modality in table.columns:
                table[modality] = [json.loads(v) if v else None for v in table[modality]]
    missing = [c for c in ("label", *MODALITIES) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return table
