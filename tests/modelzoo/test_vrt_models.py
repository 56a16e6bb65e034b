"""The VRT extractors and fusion head: traced equals eager, sizes come from the archives."""

from __future__ import annotations

import pytest
import torch

from handlers.fusion_input import EmbeddingSizeMismatch, fusion_row
from modelzoo import clip_visual, engines, families, fusion, vggish, xlmr_text


@pytest.mark.parametrize("make", [lambda: clip_visual.from_size("tiny", 1),
                                  lambda: xlmr_text.from_size("tiny", 2),
                                  lambda: vggish.from_size("tiny", 3),
                                  lambda: fusion.random_head({"visual": 8, "text": 6,
                                                              "audio": 4})],
                         ids=["clip_visual", "xlmr_text", "vggish", "fusion"])
def test_traced_equals_eager_at_several_batch_sizes(make):
    model = make().eval()
    traced = engines.trace(model, model.example(2))
    generator = torch.Generator().manual_seed(5)
    inputs = [model.example(size, generator) for size in (1, 3, 8)]
    assert engines.max_abs_difference(model, traced, inputs) < 1e-4


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
