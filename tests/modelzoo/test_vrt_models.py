"""The VRT extractors and fusion head: sizes come from the catalogue, inputs are checked.
(Every family against every engine: tests/modelzoo/test_engines.py.)"""

from __future__ import annotations

import pytest

from handlers.fusion_input import EmbeddingSizeMismatch, fusion_row
from modelzoo import clip_visual, families, vggish, xlmr_text


@pytest.mark.integration  # builds every archive
def test_fusion_sizes_are_read_from_the_catalogue_of_built_extractors(manifest, model_store):
    spec = next(s for s in manifest if s.family == "vrt_fusion")
    dims = families.extractor_dims(spec, model_store)
    assert dims == {"visual": clip_visual.from_size("tiny").embedding_dim,
                    "text": xlmr_text.from_size("tiny").embedding_dim,
                    "audio": vggish.from_size("tiny").embedding_dim}


def test_a_missing_modality_is_zeros_with_its_flag_down():
    dims = {"visual": 3, "text": 2, "audio": 2}
    row = fusion_row({"visual": [1.0, 2.0, 3.0], "text": None}, dims)
    assert row.tolist() == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    with pytest.raises(EmbeddingSizeMismatch, match="expected \\(2,\\)"):
        fusion_row({"text": [1.0, 2.0, 3.0]}, dims)


def test_xlmr_tokenizes_to_the_fixed_length_whatever_the_text():
    model = xlmr_text.from_size("tiny")
    ids, mask = model.tokenize(["short", "long " * 500])
    assert ids.shape == mask.shape == (2, model.max_length)
    assert mask[0].sum() < model.max_length == mask[1].sum()
