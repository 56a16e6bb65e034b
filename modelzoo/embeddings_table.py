"""The embeddings table shared by ``vigil embed`` (writes) and ``vigil train vrt`` (reads).

Columns: ``post_id``, ``label``, and one per modality holding the embedding or null.
Parquet stores the lists natively; CSV stores them as JSON (empty for null); JSON Lines
(what ``vigil embed`` writes) holds one object per post.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from handlers.fusion_input import MODALITIES

COLUMNS = ("post_id", "label", *MODALITIES)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as Parquet, JSON Lines or CSV, by the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
        return
    if path.suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True)
        return
    encoded = table.copy()
    for modality in MODALITIES:
        encoded[modality] = [json.dumps(list(v)) if v is not None else "" for v in encoded[modality]]
    encoded.to_csv(path, index=False)


def read_table(path: Path) -> pd.DataFrame:
    """An embeddings table from Parquet, JSON Lines or CSV; raises ValueError when columns
    are missing."""
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".jsonl":
        table = pd.read_json(path, lines=True, dtype=False)
        for modality in MODALITIES:
            if modality in table.columns:
                table[modality] = [v if isinstance(v, list) else None for v in table[modality]]
    else:
        table = pd.read_csv(path, keep_default_na=False)
        for modality in MODALITIES:
            if modality in table.columns:
                table[modality] = [json.loads(v) if v else None for v in table[modality]]
    missing = [c for c in ("label", *MODALITIES) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return table
