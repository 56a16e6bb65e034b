"""Training the fusion head on generated embeddings with a learnable signal."""

from __future__ import annotations

import pytest

from modelzoo.fusion import from_checkpoint
from modelzoo.embeddings_table import read_table, write_table
from modelzoo.vrt_training import (TrainingOptions, generate_embeddings, table_dims, train,
                                   write_outputs)

DIMS = {"visual": 16, "text": 12, "audio": 8}


def test_the_head_beats_chance_clearly_on_held_out_posts(tmp_path):
    table = generate_embeddings(3000, DIMS, seed=4)
    head, report = train(table, DIMS, TrainingOptions(epochs=15))
    assert report["macro_f1"] > 2.5 * report["chance_macro_f1"]
    assert sum(sum(row) for row in report["confusion"]) == report["validation_posts"]
    paths = write_outputs(head, report, tmp_path)
    assert all(p.stat().st_size for p in paths)
    assert "Macro-F1" in (tmp_path / "report.md").read_text()
    assert from_checkpoint(str(tmp_path / "fusion.pt")).dims == DIMS


def test_tables_round_trip_through_csv_and_parquet(tmp_path):
    table = generate_embeddings(40, DIMS, seed=1, missing_share=0.5)
    for name in ("t.parquet", "t.csv"):
        path = tmp_path / name
        write_table(table, path)
        back = read_table(path)
        assert table_dims(back) == DIMS
        assert [v is None for v in back["audio"]] == [v is None for v in table["audio"]]


def test_unknown_labels_are_refused():
    table = generate_embeddings(50, DIMS)
    table.loc[0, "label"] = "spam"
    with pytest.raises(ValueError, match="spam"):
        train(table, DIMS, TrainingOptions(epochs=1))
