"""The keyword spotter's 2-D stem, and spotters saved before it."""

from __future__ import annotations

import json

import pytest
import torch

from modelzoo import audio_training, keyword_spotter
from modelzoo.keyword_spotter import KeywordSpotter, SpotterConfig


def _clips(batch: int = 2, seconds: float = 3.0) -> torch.Tensor:
    return torch.randn(batch, int(seconds * keyword_spotter.SAMPLE_RATE_HZ),
                       generator=torch.Generator().manual_seed(0))


def test_a_spotter_saved_before_the_stem_loads_as_it_was_trained(tmp_path):
    torch.manual_seed(0)
    old = KeywordSpotter(SpotterConfig(channels=16, stem_channels=0,
                                       strides=(1, 2, 2, 2, 1))).eval()
    old.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / keyword_spotter.CONFIG_FILE).read_text())
    del saved["stem_channels"]  # what a config written before the stem holds
    (tmp_path / keyword_spotter.CONFIG_FILE).write_text(json.dumps(saved))
    loaded = keyword_spotter.load(tmp_path)
    assert loaded.config.stem_channels == 0
    with torch.inference_mode():
        assert torch.allclose(loaded(_clips()), old(_clips()))


def test_the_stem_round_trips_and_traces(tmp_path):
    torch.manual_seed(0)
    spotter = KeywordSpotter(SpotterConfig(channels=16)).eval()
    assert spotter.config.stem_channels > 0
    spotter.save_pretrained(tmp_path)
    loaded = keyword_spotter.load(tmp_path)
    traced = torch.jit.trace(loaded, _clips(1, 20.0))
    with torch.inference_mode():
        expected = spotter(_clips(3, 20.0))
        assert expected.shape == (3,)
        assert torch.allclose(loaded(_clips(3, 20.0)), expected)
        assert torch.allclose(traced(_clips(3, 20.0)), expected, atol=1e-5)


def test_the_stem_shares_its_filters_across_frequency():
    """A pattern moved up by two bands comes out of the stem moved up by one row: a
    formant higher in one voice than another meets the same filters."""
    torch.manual_seed(0)
    stem = KeywordSpotter(SpotterConfig(channels=16)).eval().stem
    bands = torch.zeros(1, 1, 40, 64)
    bands[0, 0, 10:14, 20:30] = 1.0
    moved = torch.roll(bands, shifts=2, dims=2)
    with torch.inference_mode():
        out, out_moved = stem(bands), stem(moved)
    assert torch.allclose(out_moved[:, :, 6:15], out[:, :, 5:14], atol=1e-6)
    assert not torch.allclose(out_moved, out)


@pytest.mark.parametrize(("native", "cap", "autocast"), [
    (True, None, True), (False, None, False), (True, "AVX2", False)])
def test_training_uses_bf16_only_where_the_cpu_has_it(monkeypatch, native, cap, autocast):
    monkeypatch.setattr("handlers.runtime.Path.read_text",
                        lambda self: "flags : avx2 avx512_bf16" if native else "flags : avx2")
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    with audio_training.training_precision():
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    assert (dtype == torch.bfloat16) is autocast
